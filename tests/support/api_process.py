"""The API as a real uvicorn subprocess on a free port, for tests that need a socket, several API
processes or signals; its output goes to ``log_path``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.platform.embedded_redis import free_port, terminate
from tests.support.paths import REPO

START_ATTEMPTS = 3  # a free port may be taken by someone else before uvicorn binds it


class ApiProcess:
    """``uvicorn app.main:app`` configured only through the environment (test defaults + ``env``)."""

    def __init__(self, log_path: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.log_path = log_path
        self.env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.url = ""

    def start(self, timeout: float = 30.0) -> ApiProcess:
        """Start and wait until /health answers; raises RuntimeError with the log's tail otherwise."""
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port)]
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(
                    [*command, "--no-access-log", *self.args],
                    cwd=REPO,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(timeout):
                return self
        raise RuntimeError(f"uvicorn exited with {self.process.returncode}:\n{self.log()[-3000:]}")  # type: ignore[union-attr]

    def _wait_ready(self, timeout: float) -> bool:
        """True once /health answers, False if uvicorn exited first (a port taken meanwhile)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not answer within {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        terminate(self.process, timeout=15, signum=signal.SIGTERM)
