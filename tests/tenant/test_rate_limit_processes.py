"""The rate limit across two real API processes (uvicorn) sharing the session's data Redis: a
tenant's budget is one budget, not one per replica."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.embedded_redis import free_port
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
RATE, BURST, SHARE = 10, 10, 0.2
CHUNK = max(1, min(BURST, int(RATE * SHARE)))  # tokens a process leases at a time (2)
RUN_SECONDS = 2.0


@pytest.fixture
def api_processes(settings, tmp_path: Path) -> Iterator[list[str]]:
    """Two uvicorn processes of the app on free ports, configured only through the environment."""
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "SECRET_KEY": settings.secret_key,
        "REDIS_URL": settings.redis_url,
        "HUEY_REDIS_URL": settings.huey_redis_url,
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_SECOND": str(RATE),
        "RATE_LIMIT_BURST": str(BURST),
        "RATE_LIMIT_LOCAL_SHARE": str(SHARE),
    }
    processes, urls = [], []
    try:
        for i in range(2):
            port = free_port()
            log = (tmp_path / f"api{i}.log").open("w")
            command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
            processes.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log), log))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for (process, _), url in zip(processes, urls, strict=True):
            while True:
                assert process.poll() is None, (tmp_path / "api0.log").read_text() + (tmp_path / "api1.log").read_text()
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API processes did not start"
                time.sleep(0.1)
        yield urls
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()


def test_two_api_processes_share_the_tenant_budget(api_processes: list[str]) -> None:
    first, second = (httpx.Client(base_url=url, timeout=10) for url in api_processes)
    with first, second:
        body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
        registered = first.post("/api/v1/auth/register", json=body)
        assert registered.status_code == 201, registered.text
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}

        admitted = {0: 0, 1: 0}
        refused = []
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < RUN_SECONDS:
            which = sent % 2
            response = (first, second)[which].get("/api/v1/usage", headers=headers)
            sent += 1
            assert response.status_code in (200, 429), response.text
            assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(response.headers)
            if response.status_code == 200:
                admitted[which] += 1
            else:
                refused.append(response)
            time.sleep(0.005)
        elapsed = time.monotonic() - started

    total = admitted[0] + admitted[1]
    budget = BURST + RATE * elapsed
    # Every admitted request spent a token of the one budget in Redis first: never more than the
    # budget; fewer by at most the chunk each process may still hold, and a token or two of timing.
    assert total <= budget + 1, (total, budget, admitted)
    assert total >= budget - 2 * CHUNK - 3, (total, budget, admitted)
    assert min(admitted.values()) >= BURST // 4, admitted  # both processes served the tenant
    assert sent > 2 * budget  # the client did push past the budget
    assert refused and all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert all(r.json()["code"] == "too_many_requests" for r in refused)
    assert all(r.headers["ratelimit-remaining"] == "0" for r in refused)
