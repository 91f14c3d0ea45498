"""Real sockets for the kvctl end-to-end tests (the API itself runs as tests.api_process.ApiProcess):
a TCP proxy that can cut connections, and kvctl subprocesses (`python -m kvctl`) with their own
config file."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "Secret123"


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target port; drop() cuts every open connection and, while
    paused, new connections are closed at once (a server that is unreachable for a moment)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepting = threading.Event()
        self.accepting.set()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.accepting.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        with self.lock:
            connections, self.connections = self.connections, []
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def pause(self) -> None:
        self.accepting.clear()

    def resume(self) -> None:
        self.accepting.set()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.drop()


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
        )
        return LiveProcess(process)


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
