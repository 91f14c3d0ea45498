"""Several API processes (uvicorn subprocesses) on one data Redis: a change written through one
reaches a watcher on another, the stream limit counts every process's streams, and SIGTERM ends
open streams with the revision to resume from."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.platform.embedded_redis import RedisProcess
from tests.support.api_process import ApiProcess
from tests.support.polling import wait_until
from tests.support.watch_client import API, new_tenant, put, watching

pytestmark = pytest.mark.subprocess


def replica(data: RedisProcess, queue: RedisProcess, log_path: Path) -> ApiProcess:
    """An API process on the test's Redis servers, with short watch timings."""
    env = {
        "REDIS_URL": data.url,
        "HUEY_REDIS_URL": queue.url,
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "RATE_LIMIT_PER_SECOND": "0",
        "WATCH_HEARTBEAT_SECONDS": "0.3",
        "MAX_WATCH_STREAMS_PER_TENANT": "2",
    }
    return ApiProcess(log_path, env).start()


@pytest.fixture(scope="module")
def replicas(
    data_server: RedisProcess, queue_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    logs = tmp_path_factory.mktemp("replicas")
    apis: list[ApiProcess] = []
    try:
        for n in (1, 2):
            apis.append(replica(data_server, queue_server, logs / f"api-{n}.log"))
        yield apis[0], apis[1]
    finally:
        for api in apis:
            api.stop()


async def test_a_change_written_through_one_process_reaches_a_watcher_on_another(replicas) -> None:
    writer_api, watcher_api = replicas
    async with (
        httpx.AsyncClient(base_url=writer_api.url) as writer,
        httpx.AsyncClient(base_url=watcher_api.url) as reader,
    ):
        tenant = await new_tenant(writer, f"u{uuid.uuid4().hex[:12]}")
        async with watching(reader, tenant=tenant) as stream:
            await put(writer, tenant, "from-the-other-process", {"value": 42})
            event = await stream.next()
    assert (event.event, event.id, event.data["key"], event.data["value"]) == ("put", 1, "from-the-other-process", 42)


async def test_the_stream_limit_counts_the_streams_of_every_process(replicas) -> None:
    first, second = replicas
    async with httpx.AsyncClient(base_url=first.url) as one, httpx.AsyncClient(base_url=second.url) as two:
        tenant = await new_tenant(one, f"u{uuid.uuid4().hex[:12]}")
        async with watching(one, tenant=tenant), watching(two, tenant=tenant) as on_second:
            for api in (one, two):
                response = await api.get(f"{API}/kv/watch", headers=tenant.headers)
                assert (response.status_code, response.json()["code"]) == (429, "quota_exceeded")
            await on_second.response.aclose()  # a client leaves the second process...

            async def accepted_by_first() -> bool:
                async with one.stream("GET", f"{API}/kv/watch", headers=tenant.headers) as response:
                    return response.status_code == 200

            await wait_until(accepted_by_first, what="the first process to accept a stream")  # ...released


def test_sigterm_ends_open_streams_with_where_to_resume(data_server, queue_server, tmp_path) -> None:
    api = replica(data_server, queue_server, tmp_path / "api.log")
    try:
        with httpx.Client(base_url=api.url, timeout=10) as http:
            body = http.post(
                f"{API}/auth/register",
                json={"username": f"u{uuid.uuid4().hex[:12]}", "email": "s@example.com", "password": "Secret123"},
            ).json()
            headers = {"Authorization": f"Bearer {body['access_token']}"}
            with http.stream("GET", f"{API}/kv/watch", headers=headers) as response:
                assert response.status_code == 200
                assert http.put(f"{API}/kv/k", json={"value": 1}, headers=headers).status_code == 201
                lines = response.iter_lines()
                assert next(line for line in lines if line.startswith("id:")) == "id: 1"
                api.process.send_signal(signal.SIGTERM)
                rest = list(lines)  # until the server ends the stream
        assert "event: error" in rest
        data = next(line for line in rest if line.startswith("data:") and "shutting_down" in line)
        assert '"resume_from":1' in data
        # A clean shutdown: uvicorn re-raises the SIGTERM it handled, once everything is closed.
        assert api.process.wait(10) in (0, -signal.SIGTERM)
        log = api.log_path.read_text()
        assert "Traceback" not in log and '"level": "ERROR"' not in log, log[-3000:]
    finally:
        api.stop()
