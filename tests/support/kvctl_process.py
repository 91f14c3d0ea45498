"""kvctl as a user runs it, for the end-to-end tests: `python -m kvctl` subprocesses with their own
config file, one-shot or running (watch) with their output read line by line."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from app.platform.embedded_redis import RedisProcess
from tests.support.api_process import ApiProcess
from tests.support.consumer import run_consumer
from tests.support.paths import REPO
from tests.support.tenants import PASSWORD, SECRET_KEY


@dataclass
class Run:
    code: int
    out: str
    err: str


class Kvctl:
    """Runs `python -m kvctl` as a user would, with its own config file."""

    def __init__(self, url: str, config: Path) -> None:
        self.url = url
        self.username = ""  # set once registered
        self.env = {**os.environ, "KVCTL_CONFIG": str(config), "KVCTL_URL": url, "KVCTL_PASSWORD": PASSWORD}
        self.env.pop("KVCTL_DEBUG", None)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kvctl", *args]

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 60) -> Run:
        done = subprocess.run(
            self.command(*args), cwd=REPO, env=self.env, input=stdin, capture_output=True, text=True, timeout=timeout
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> LiveProcess:
        process = subprocess.Popen(
            self.command(*args),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            # Ctrl-C reaches kvctl as in a terminal even when the suite runs in a background job (which
            # inherits SIGINT ignored).
            preexec_fn=_default_sigint,
        )
        return LiveProcess(process)


@contextmanager
def serve_api(
    data_server: RedisProcess, queue_server: RedisProcess, logs: Path, *, consumer: bool = False
) -> Iterator[ApiProcess]:
    """The API served by uvicorn on the suite's redis-servers for kvctl to call (logs in ``logs``), with a
    Huey consumer when ``consumer`` (exports, imports, the audit trail)."""
    env = {"REDIS_URL": data_server.url, "HUEY_REDIS_URL": queue_server.url, "SECRET_KEY": SECRET_KEY}
    server = ApiProcess(logs / "uvicorn.log", env).start()
    with run_consumer(data_server.url, queue_server.url, logs / "consumer.log") if consumer else nullcontext():
        yield server
    server.stop()


def registered(url: str, config: Path, username: str) -> Kvctl:
    """A kvctl with ``username`` freshly registered (and so logged in), its session in ``config``."""
    kvctl = Kvctl(url, config)
    kvctl.username = username
    run = kvctl("register", "-u", username, "-e", f"{username}@example.com")
    assert run.code == 0, run.err
    return kvctl


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class LiveProcess:
    """A running kvctl (watch) whose output lines are read with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(process.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._read, args=(process.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _read(stream, sink) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink(line.rstrip("\n"))
        sink(None)

    def next_line(self, timeout: float = 20.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s; stderr: {self.stderr}") from None
        if line is None:
            raise AssertionError(f"kvctl exited ({self.process.poll()}); stderr: {self.stderr}")
        return line

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(10)
