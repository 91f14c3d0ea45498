"""Object store throughput and memory: one large object up and down over loopback.

Starts its own data and queue redis-server (AOF everysec, as production; --no-aof to leave the
disk out) and one uvicorn process on free ports, registers a tenant, then streams a SIZE MiB
object up with httpx and streams it back, checking the SHA-256 both ways. Reports MiB/s each
way and the API process's peak RSS growth (VmHWM at the end minus VmRSS before the transfers),
and writes the figures as JSON to bench/results/.

    python -m bench.objects_bench [--size-mib 256] [--chunk-mib 1] [--no-aof]

Targets (issue 6): memory growth < 64 MiB, >= 100 MiB/s down, >= 50 MiB/s up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from app.platform.embedded_redis import RedisProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MIB = 1024 * 1024
PIECE = MIB  # what the client hands httpx per write
TARGETS = {"memory_growth_mib": 64, "download_mib_s": 100, "upload_mib_s": 50}


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (contention on a shared machine leaves it be)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not start")


def body(size: int, digest: hashlib._Hash) -> Iterator[bytes]:
    """``size`` bytes of random data (an 8 MiB block repeated at shifting offsets), hashed as sent."""
    block = os.urandom(8 * MIB)
    sent = 0
    while sent < size:
        offset = (sent // PIECE * 4099) % (len(block) - PIECE)
        piece = block[offset : offset + min(PIECE, size - sent)]
        digest.update(piece)
        sent += len(piece)
        yield piece


def run(size_mib: int, chunk_mib: int, aof: bool) -> dict[str, object]:
    size = size_mib * MIB
    workdir = Path(tempfile.mkdtemp(prefix="kvstore-objects-bench-"))
    data = RedisProcess(workdir / "data", appendonly=aof).start()
    queue = RedisProcess(workdir / "queue", appendonly=False).start()
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "objects-bench-secret-key-0123456789abcdef",
        "REDIS_URL": data.url,
        "HUEY_REDIS_URL": queue.url,
        "LOG_LEVEL": "WARNING",
        "MAX_OBJECT_BYTES": str(max(size, 1024 * MIB)),
        "BCRYPT_ROUNDS": "4",
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--no-access-log"]
    api = subprocess.Popen([*command, "--log-level", "warning"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", api)
        with httpx.Client(base_url=base, timeout=120) as client:
            tokens = client.post(
                "/api/v1/auth/register",
                json={"username": "bench", "email": "bench@example.com", "password": "Secret123"},
            ).json()
            client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
            made = client.post("/api/v1/objects/buckets", json={"name": "bench", "chunk_size": chunk_mib * MIB})
            made.raise_for_status()
            url = "/api/v1/objects/buckets/bench/objects/big.bin"
            # Warm up every code path once, so the baseline includes imports and pools.
            client.put(url, content=os.urandom(3 * MIB)).raise_for_status()
            client.get(url).raise_for_status()
            baseline_kib = proc_status_kib(api.pid, "VmRSS")

            sent = hashlib.sha256()
            cpu_before = cpu_seconds(api.pid)
            started = time.perf_counter()
            response = client.put(url, content=body(size, sent))
            upload_s = time.perf_counter() - started
            upload_cpu = cpu_seconds(api.pid) - cpu_before
            response.raise_for_status()
            if response.json()["sha256"] != sent.hexdigest():
                raise RuntimeError("the server's SHA-256 differs from the bytes sent")

            received = hashlib.sha256()
            length = 0
            cpu_before = cpu_seconds(api.pid)
            started = time.perf_counter()
            with client.stream("GET", url) as download:
                for piece in download.iter_raw(PIECE):
                    received.update(piece)
                    length += len(piece)
            download_s = time.perf_counter() - started
            download_cpu = cpu_seconds(api.pid) - cpu_before
            if length != size or received.hexdigest() != sent.hexdigest():
                raise RuntimeError("the download differs from the upload")
            peak_kib = proc_status_kib(api.pid, "VmHWM")
    finally:
        api.terminate()
        api.wait(15)
        data.stop()
        queue.stop()
    return {
        "size_mib": size_mib,
        "chunk_mib": chunk_mib,
        "aof": aof,
        "upload_mib_s": round(size_mib / upload_s, 1),
        "download_mib_s": round(size_mib / download_s, 1),
        # What the API process spent per GiB: a figure that other load on the machine does not skew.
        "upload_api_cpu_s_per_gib": round(upload_cpu * 1024 / size_mib, 2),
        "download_api_cpu_s_per_gib": round(download_cpu * 1024 / size_mib, 2),
        "load_average": os.getloadavg()[0],
        "baseline_rss_mib": round(baseline_kib / 1024, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "memory_growth_mib": round((peak_kib - baseline_kib) / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--chunk-mib", type=int, default=1)
    parser.add_argument("--no-aof", action="store_true", help="data Redis without AOF (leave the disk out)")
    args = parser.parse_args()
    result = run(args.size_mib, args.chunk_mib, not args.no_aof)
    checks = {
        "memory_growth_mib": result["memory_growth_mib"] < TARGETS["memory_growth_mib"],  # type: ignore[operator]
        "download_mib_s": result["download_mib_s"] >= TARGETS["download_mib_s"],  # type: ignore[operator]
        "upload_mib_s": result["upload_mib_s"] >= TARGETS["upload_mib_s"],  # type: ignore[operator]
    }
    for name, value in result.items():
        mark = "" if name not in checks else ("  ok" if checks[name] else f"  MISSES target {TARGETS[name]}")
        print(f"{name:>18}: {value}{mark}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"objects-{stamp}.json").write_text(json.dumps({**result, "targets_met": checks}, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
