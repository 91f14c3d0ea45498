"""Processes for the fault tests: dedicated redis-server processes (never the session's, which other
tests share) and the API as a real uvicorn subprocess that a test can signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.core.embedded_redis import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Secret123"


class ApiProcess:
    """``uvicorn app.main:app`` on a free port, its output in ``log_path``."""

    def __init__(self, log_path: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
            **env,
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ApiProcess:
        command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--no-access-log", *self.args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"uvicorn exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"uvicorn did not answer within {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def redis_server(redis_binary: str, tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Starts dedicated redis-server processes (``appendonly``/``appendfsync`` as the test needs);
    every one still running is stopped afterwards."""
    started: list[RedisProcess] = []

    def start(name: str, **options: object) -> RedisProcess:
        server = RedisProcess(tmp_path / name, **options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[Callable[..., ApiProcess]]:
    """Starts uvicorn subprocesses of the API; every one still running is stopped afterwards."""
    started: list[ApiProcess] = []

    def start(env: dict[str, str], args: tuple[str, ...] = (), name: str = "api") -> ApiProcess:
        api = ApiProcess(tmp_path / f"{name}-{len(started)}.log", env, args).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


def register_sync(url: str, username: str) -> dict:
    """Registers a tenant over HTTP: its tenant_id, tokens and ready-made auth ``headers``."""
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    response = httpx.post(f"{url}/api/v1/auth/register", json=body, timeout=10)
    assert response.status_code == 201, response.text
    tenant = response.json()
    tenant["headers"] = {"Authorization": f"Bearer {tenant['access_token']}"}
    return tenant
