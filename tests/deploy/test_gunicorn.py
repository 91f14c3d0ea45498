"""The real thing: gunicorn with gunicorn.conf.py and 2 uvicorn workers on the session's Redis.
/metrics must count the requests that every worker served, and the master's hooks must wipe
stale metric files at start and drop a dead worker's live-only gauges."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType, SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.platform.embedded_redis import RedisProcess, free_port
from tests.support.paths import REPO

GUNICORN = Path(sys.executable).parent / "gunicorn"
HANDLER = {"handler": "/api/v1/auth/me", "method": "GET", "status": "401"}
DURATION = {"handler": "/api/v1/auth/me", "method": "GET"}  # the histogram has no status label
STALE_COUNT = 1000


def write_stale_metrics(directory: Path) -> None:
    """Counter files of a 'previous run' in another process: if they survived, every count is off."""
    code = (
        "from app.platform.metrics import HTTP_REQUESTS\n"
        f"HTTP_REQUESTS.labels('/api/v1/auth/me', 'GET', '401').inc({STALE_COUNT})\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=60)
    assert list(directory.glob("counter_*.db"))


def per_process_counts(directory: Path) -> dict[int, float]:
    """Requests counted by each process, read from its own counter file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        single = directory.parent / f"one-{path.stem}"
        single.mkdir(exist_ok=True)
        shutil.copy(path, single / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(single))
        counts[int(path.stem.split("_")[-1])] = registry.get_sample_value("http_requests_total", HANDLER) or 0.0
        shutil.rmtree(single)
    return counts


def scrape(base_url: str) -> dict[str, float]:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels == HANDLER:
                values["requests"] = sample.value
            elif sample.name == "http_request_duration_seconds_count" and sample.labels == DURATION:
                values["durations"] = sample.value
            elif sample.name == "kvstore_auth_failures_total" and sample.labels == {"reason": "unauthorized"}:
                values["auth_failures"] = sample.value
            elif sample.name == "http_requests_total" and sample.labels.get("handler") == "/metrics":
                values["scrapes"] = sample.value
    return values


@pytest.fixture
def gunicorn_server(data_server: RedisProcess, queue_server: RedisProcess, tmp_path: Path) -> Iterator[SimpleNamespace]:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    write_stale_metrics(multiproc)
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "SECRET_KEY": os.environ["SECRET_KEY"],
        "REDIS_URL": data_server.url,
        "HUEY_REDIS_URL": queue_server.url,
        "BIND_HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "LOG_LEVEL": "INFO",
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [str(GUNICORN), "-c", "gunicorn.conf.py", "app.main:app"], cwd=REPO, env=env, stdout=log, stderr=log
    )
    base_url = f"http://127.0.0.1:{port}"
    server = SimpleNamespace(process=process, base_url=base_url, multiproc=multiproc, log=tmp_path / "gunicorn.log")
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"gunicorn exited: {server.log.read_text()}"
            try:
                if httpx.get(f"{base_url}/api/v1/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"gunicorn did not get ready: {server.log.read_text()}"
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def image_healthcheck(dockerfile: str) -> list[str]:
    """The HEALTHCHECK command of an image (exec form), with this interpreter for ``python``."""
    text = re.sub(r"\\\n\s*", " ", (REPO / dockerfile).read_text())
    line = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    command = json.loads(line.split(" CMD ", 1)[1])
    return [sys.executable if part == "python" else part for part in command]


def send_burst(base_url: str, count: int) -> None:
    """``count`` unauthenticated requests at once, each on its own connection, so both workers accept."""

    def one(_: int) -> int:
        return httpx.get(f"{base_url}/api/v1/auth/me", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(one, range(count))) == {401}


@pytest.mark.subprocess
def test_metrics_count_the_requests_of_every_gunicorn_worker(gunicorn_server: SimpleNamespace) -> None:
    sent = 0
    counts: dict[int, float] = {}
    for _ in range(25):  # bounded: stop as soon as both workers have served some
        send_burst(gunicorn_server.base_url, 32)
        sent += 32
        counts = per_process_counts(gunicorn_server.multiproc)
        if sum(1 for value in counts.values() if value > 0) >= 2:
            break
    serving = {pid for pid, value in counts.items() if value > 0}
    assert len(serving) == 2, f"only {serving} served requests: {counts}"
    assert sum(counts.values()) == sent  # the stale files of the previous run were wiped

    first = scrape(gunicorn_server.base_url)
    assert first == {"requests": sent, "durations": sent, "auth_failures": sent}  # /metrics itself not counted

    # The image's HEALTHCHECK command, run for real: it passes here and fails on a port nothing serves.
    healthcheck = image_healthcheck("Dockerfile")
    port = gunicorn_server.base_url.rsplit(":", 1)[1]
    assert subprocess.run(healthcheck, env={**os.environ, "PORT": port}, timeout=30).returncode == 0
    closed = str(free_port())
    assert subprocess.run(healthcheck, env={**os.environ, "PORT": closed}, capture_output=True, timeout=30).returncode

    # A worker that dies takes neither its counts nor the others' with it.
    os.kill(serving.pop(), signal.SIGTERM)
    send_burst(gunicorn_server.base_url, 8)
    assert scrape(gunicorn_server.base_url)["requests"] == sent + 8

    gunicorn_server.process.send_signal(signal.SIGTERM)
    assert gunicorn_server.process.wait(30) == 0
    raw = [line for line in gunicorn_server.log.read_text().splitlines() if line.strip()]
    assert [line for line in raw if not line.startswith("{")] == []
    loggers = {json.loads(line)["logger"] for line in raw}
    assert {"gunicorn.error", "uvicorn.error", "kvstore.access"} <= loggers  # master and workers: all JSON


def load_gunicorn_conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", REPO / "gunicorn.conf.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gunicorn_conf_takes_workers_port_and_timeouts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "unset-below")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")  # undo() deletes what the config file sets
    for name, value in {
        "WEB_CONCURRENCY": "3",
        "PORT": "9999",
        "GRACEFUL_TIMEOUT": "12",
        "BIND_HOST": "10.1.2.3",
    }.items():
        monkeypatch.setenv(name, value)
    conf = load_gunicorn_conf()
    assert (conf.workers, conf.bind, conf.graceful_timeout) == (3, "10.1.2.3:9999", 12)
    assert conf.worker_class == "uvicorn_worker.UvicornWorker"
    module, _, name = conf.worker_class.rpartition(".")
    assert hasattr(importlib.import_module(module), name)
    assert conf.accesslog is None and conf.control_socket_disable is True
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(conf.MULTIPROC_DIR)  # set for the workers to inherit


def test_on_starting_wipes_only_metric_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    conf = load_gunicorn_conf()
    conf.on_starting(None)  # creates the directory
    for name in ("counter_11.db", "histogram_11.db", "gauge_livesum_12.db", "notes.txt"):
        (tmp_path / "prom" / name).write_bytes(b"x")
    conf.on_starting(None)
    assert [path.name for path in (tmp_path / "prom").iterdir()] == ["notes.txt"]


def test_child_exit_drops_the_dead_workers_live_gauges_and_keeps_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    conf = load_gunicorn_conf()
    for name in ("counter_4242.db", "gauge_livesum_4242.db", "gauge_liveall_4242.db", "gauge_livesum_4243.db"):
        (tmp_path / name).write_bytes(b"")
    conf.child_exit(None, SimpleNamespace(pid=4242))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["counter_4242.db", "gauge_livesum_4243.db"]
