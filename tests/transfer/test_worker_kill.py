"""A Huey consumer killed (SIGKILL) mid-export or mid-import: the next consumer's transfer pass finds
the job's lease run out and resumes it, or, past TRANSFER_MAX_ATTEMPTS runs, fails it with a clear
error and frees its archive; the import's report describes what the tenant holds."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.support.apps import serve
from tests.support.consumer import run_consumer
from tests.support.tenants import bearer, register
from tests.support.transfer import API, fill

pytestmark = [pytest.mark.subprocess, pytest.mark.slow, pytest.mark.timeout(600)]

KEYS = 9000
OBJECTS = 12
OBJECT_SIZE = 3 * 1024 * 1024
FAST_PASS = {"TRANSFER_LEASE_SECONDS": "2", "TRANSFER_PASS_SECONDS": "1", "HUEY_WORKERS": "1"}


async def wait_status(http: httpx.AsyncClient, path: str, headers: dict, until: object, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = (await http.get(f"{API}{path}", headers=headers)).json()
        if until(status):  # type: ignore[operator]
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.01)


def mid_run(status: dict) -> bool:
    assert status["status"] != "done", "the run finished before it could be killed: make the data bigger"
    progress = status["progress"]
    return status["status"] == "running" and (progress["keys"] > 0 or progress["objects"] > 0)


def kill(consumer: object) -> None:
    process = consumer.process  # type: ignore[attr-defined]
    process.send_signal(signal.SIGKILL)
    process.wait(10)


async def test_killed_export_and_import_resume(settings: Settings, tmp_path: Path) -> None:
    async with serve(create_app(settings)) as http:
        source = await register(http, "source")
        headers = bearer(source)
        await fill(http, headers, buckets=3, keys=KEYS, objects=OBJECTS, size=OBJECT_SIZE)
        with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "w1.log", env=FAST_PASS) as worker:
            job_id = (await http.post(f"{API}/exports", json={"objects": True}, headers=headers)).json()["id"]
            await wait_status(http, f"/exports/{job_id}", headers, mid_run)
            kill(worker)
        with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "w2.log", env=FAST_PASS):
            done = await wait_status(http, f"/exports/{job_id}", headers, lambda s: s["status"] in ("done", "failed"))
            assert done["status"] == "done" and done["attempts"] == 2, done
            assert done["progress"] == {
                "keys": KEYS,
                "objects": OBJECTS,
                "bytes": sum(OBJECT_SIZE + n for n in range(OBJECTS)),
            }
            archive = (await http.get(f"{API}/exports/{job_id}/download", headers=headers)).content
            assert len(archive) == done["archive"]["size"]
            usage = (await http.get(f"{API}/usage", headers=headers)).json()
            # Only the resumed run's archive is kept: the killed run's volumes were discarded.
            assert usage["object_bytes"] == sum(OBJECT_SIZE + n for n in range(OBJECTS)) + len(archive)

        target = bearer(await register(http, "target"))
        with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "w3.log", env=FAST_PASS) as worker:
            r = await http.post(
                f"{API}/imports", content=archive, headers={**target, "Content-Type": "application/x-tar"}
            )
            import_id = r.json()["id"]

            def writing(status: dict) -> bool:
                return mid_run(status) and status["report"] is not None and status["report"]["created"] > 0

            await wait_status(http, f"/imports/{import_id}", target, writing)
            kill(worker)
        with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "w4.log", env=FAST_PASS):
            done = await wait_status(http, f"/imports/{import_id}", target, lambda s: s["status"] in ("done", "failed"))
        assert done["status"] == "done" and done["attempts"] == 2, done
        report = done["report"]
        assert report["resumed_at_member"] is not None and report["failed"] == 0
        # Every item once: created by one of the runs, or (the batch in flight at the kill) counted as skipped.
        assert report["created"] + report["skipped"] == KEYS + OBJECTS
        usage = (await http.get(f"{API}/usage", headers=target)).json()
        assert usage["keys"] == KEYS and usage["objects"] == OBJECTS  # the uploaded archive is gone


async def test_a_job_killed_too_often_fails_cleanly(settings: Settings, tmp_path: Path) -> None:
    env = {**FAST_PASS, "TRANSFER_MAX_ATTEMPTS": "1"}
    async with serve(create_app(settings)) as http:
        headers = bearer(await register(http, "source"))
        await fill(http, headers, buckets=3, keys=KEYS, objects=OBJECTS, size=OBJECT_SIZE)
        before = (await http.get(f"{API}/usage", headers=headers)).json()
        with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "w1.log", env=env) as worker:
            job_id = (await http.post(f"{API}/exports", json={"objects": True}, headers=headers)).json()["id"]
            await wait_status(http, f"/exports/{job_id}", headers, mid_run)
            kill(worker)
        with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "w2.log", env=env):
            failed = await wait_status(http, f"/exports/{job_id}", headers, lambda s: s["status"] in ("done", "failed"))

            async def freed() -> bool:
                usage = (await http.get(f"{API}/usage", headers=headers)).json()
                return usage["object_bytes"] == before["object_bytes"] and usage["object_pending_bytes"] == 0

            deadline = time.monotonic() + 30
            while not await freed():
                assert time.monotonic() < deadline, "the killed run's volumes were not freed"
                await asyncio.sleep(0.1)
        assert failed["status"] == "failed" and "worker stopped" in failed["error"], failed
        r = await http.get(f"{API}/exports/{job_id}/download", headers=headers)
        assert r.status_code == 409 and r.json()["code"] == "export_not_ready"
