"""Export and import at scale: the memory the API and the worker need to move a tenant's data.

Starts its own data and queue redis-server (no AOF), one uvicorn API and one Huey consumer on free
ports, fills a tenant with KEYS keys (3 buckets, tags, TTLs, binary values) and OBJECT_MIB MiB of
objects, exports it (POST /exports, waits), downloads the archive to a temporary file (streamed,
SHA-256 checked), imports the file into a second tenant (streamed up, waits) and checks the counts.
Reports the time of each phase and each process's peak RSS growth (VmHWM at the end minus VmRSS
after warm-up), and writes the figures as JSON to bench/results/.

    python -m bench.export_bench [--keys 100000] [--object-mib 1024] [--objects 8]

The data Redis holds the source data, the export's archive, the uploaded archive and the imported
copy at once: about 4 x (OBJECT_MIB + the keys' bytes) of RAM at the peak.

Targets (issue 24): memory growth < 128 MiB for the API and < 256 MiB for the worker, whatever the size.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.platform.embedded_redis import RedisProcess, free_port
from bench.objects_bench import proc_status_kib, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MIB = 1024 * 1024
API = "/api/v1"
TARGETS = {"api_memory_growth_mib": 128, "worker_memory_growth_mib": 256}


def wait_job(client: httpx.Client, path: str, timeout: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.get(path).json()
        if status["status"] in ("done", "failed"):
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} still {status['status']}")
        time.sleep(0.2)


def register(client: httpx.Client, name: str) -> dict[str, str]:
    body = {"username": name, "email": f"{name}@example.com", "password": "Secret123"}
    token = client.post(f"{API}/auth/register", json=body).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def fill(client: httpx.Client, headers: dict[str, str], keys: int, objects: int, object_mib: int) -> None:
    per = keys // 3
    for b in range(3):
        client.post(f"{API}/kv/buckets", json={"name": f"b{b}"}, headers=headers).raise_for_status()
        for start in range(0, per, 1000):
            items: list[dict[str, Any]] = []
            for i in range(start, min(per, start + 1000)):
                item: dict[str, Any] = {
                    "key": f"k{i:06d}",
                    "value": {"i": i, "pad": "x" * 64},
                    "tags": {"t": str(i % 5)},
                }
                if i % 3 == 0:
                    item["ttl"] = 86_400
                if i % 5 == 0:
                    item["value"], item["encoding"] = base64.b64encode(os.urandom(48)).decode(), "base64"
                items.append(item)
            client.post(f"{API}/kv/buckets/b{b}/keys/batch", json={"items": items}, headers=headers).raise_for_status()
    client.post(f"{API}/objects/buckets", json={"name": "files"}, headers=headers).raise_for_status()
    size = object_mib * MIB // max(objects, 1)
    block = os.urandom(8 * MIB)

    def body() -> Any:
        sent = 0
        while sent < size:
            piece = block[: min(MIB, size - sent)]
            sent += len(piece)
            yield piece

    for n in range(objects):
        client.put(f"{API}/objects/buckets/files/objects/o{n}.bin", content=body(), headers=headers).raise_for_status()


def run(keys: int, objects: int, object_mib: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="kvstore-export-bench-"))
    data = RedisProcess(workdir / "data", appendonly=False).start()
    queue = RedisProcess(workdir / "queue", appendonly=False).start()
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "export-bench-secret-key-0123456789abcdef",
        "REDIS_URL": data.url,
        "HUEY_REDIS_URL": queue.url,
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_PER_SECOND": "0",
        "QUOTA_MAX_OBJECT_BYTES": str(16 * 1024 * MIB),
        "WORKER_METRICS_PORT": str(metrics_port),
        "WORKER_METRICS_HOST": "127.0.0.1",
        "HUEY_WORKERS": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    uvicorn = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--no-access-log"]
    api = subprocess.Popen([*uvicorn, "--log-level", "warning"], cwd=ROOT, env=env)
    worker = subprocess.Popen([sys.executable, "-m", "app.worker.consumer"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"keys": keys, "objects": objects, "object_mib": object_mib}
    archive_path = workdir / "export.tar"
    try:
        wait_for_http(f"{base}/health", api)
        wait_for_http(f"http://127.0.0.1:{metrics_port}/metrics", worker)
        with httpx.Client(base_url=base, timeout=600) as client:
            source = register(client, "source")
            started = time.perf_counter()
            fill(client, source, keys, objects, object_mib)
            result["fill_s"] = round(time.perf_counter() - started, 1)
            # Warm up every path once (a tiny tenant's export and import), then take the baselines.
            tiny = register(client, "tiny")
            client.put(f"{API}/kv/warm", json={"value": 1}, headers=tiny)
            warm = client.post(f"{API}/exports", json={"objects": True}, headers=tiny).json()["id"]
            client.headers.update(tiny)
            wait_job(client, f"{API}/exports/{warm}")
            warm_archive = client.get(f"{API}/exports/{warm}/download").content
            imported = client.post(
                f"{API}/imports", content=warm_archive, headers={"Content-Type": "application/x-tar"}
            )
            wait_job(client, f"{API}/imports/{imported.json()['id']}")
            api_base, worker_base = proc_status_kib(api.pid, "VmRSS"), proc_status_kib(worker.pid, "VmRSS")

            client.headers.update(source)
            started = time.perf_counter()
            job = client.post(f"{API}/exports", json={"buckets": ["*"], "objects": True}).json()["id"]
            status = wait_job(client, f"{API}/exports/{job}")
            result["export_s"] = round(time.perf_counter() - started, 1)
            if status["status"] != "done":
                raise RuntimeError(f"export failed: {status['error']}")
            digest = hashlib.sha256()
            started = time.perf_counter()
            with client.stream("GET", f"{API}/exports/{job}/download") as response, archive_path.open("wb") as sink:
                for piece in response.iter_raw(MIB):
                    digest.update(piece)
                    sink.write(piece)
            result["download_s"] = round(time.perf_counter() - started, 1)
            if digest.hexdigest() != status["archive"]["sha256"]:
                raise RuntimeError("the download does not match the archive's SHA-256")
            result["archive_mib"] = round(archive_path.stat().st_size / MIB, 1)

            client.headers.update(register(client, "target"))

            def upload() -> Any:
                with archive_path.open("rb") as handle:
                    while piece := handle.read(MIB):
                        yield piece

            started = time.perf_counter()
            accepted = client.post(
                f"{API}/imports",
                content=upload(),
                headers={"Content-Type": "application/x-tar", "Content-Length": str(archive_path.stat().st_size)},
            )
            accepted.raise_for_status()
            result["upload_s"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            status = wait_job(client, f"{API}/imports/{accepted.json()['id']}")
            result["import_s"] = round(time.perf_counter() - started, 1)
            report = status["report"]
            if status["status"] != "done" or report["created"] != 3 * (keys // 3) + objects:
                raise RuntimeError(f"import: {status['status']} {status['error']} {report}")
            result["api_memory_growth_mib"] = round((proc_status_kib(api.pid, "VmHWM") - api_base) / 1024, 1)
            result["worker_memory_growth_mib"] = round((proc_status_kib(worker.pid, "VmHWM") - worker_base) / 1024, 1)
            result["api_baseline_rss_mib"] = round(api_base / 1024, 1)
            result["worker_baseline_rss_mib"] = round(worker_base / 1024, 1)
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait(30)
        data.stop()
        queue.stop()
        archive_path.unlink(missing_ok=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--object-mib", type=int, default=1024, help="MiB of objects in all")
    args = parser.parse_args()
    result = run(args.keys, args.objects, args.object_mib)
    checks = {name: result[name] < limit for name, limit in TARGETS.items()}
    for name, value in result.items():
        mark = "" if name not in checks else ("  ok" if checks[name] else f"  MISSES target {TARGETS[name]}")
        print(f"{name:>26}: {value}{mark}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"export-{stamp}.json").write_text(json.dumps({**result, "targets_met": checks}, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
