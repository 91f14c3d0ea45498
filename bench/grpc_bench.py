"""gRPC throughput: Get and Put RPCs per second against `python -m app.grpc` (one process, one
core's worth of asyncio), beside the HTTP figures of `python -m bench.run`.

Starts its own redis-servers, the API (uvicorn, only to register the tenant) and the gRPC server in
processes of their own, then drives kvstore.v1.KV/Get and /Put from this process with grpcio's
asyncio client: CONCURRENCY calls in flight on one channel for DURATION seconds each, after a warm-up.
Prints RPCs/s and latency percentiles, and writes bench/results/grpc-<time>.json.

    python -m bench.grpc_bench [--duration 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.grpc.gen import kvstore_v1_pb2 as pb
from app.grpc.gen import kvstore_v1_pb2_grpc as pb_grpc
from app.platform.embedded_redis import RedisProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VALUE = json.dumps({"name": "bench", "count": 42, "tags": ["a", "b"]}).encode()
KEYS = 1000


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


async def wait_for_grpc(target: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(service="kvstore.v1.KV"), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the gRPC server on {target} did not become ready")


async def drive(call: Callable[[int], Awaitable[Any]], concurrency: int, duration: float) -> dict[str, float]:
    """``concurrency`` loops calling ``call(i)`` until ``duration`` is over: RPCs/s and latencies (ms)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration
    counter = iter(range(10**12))

    async def loop() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await call(next(counter))
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rpcs": len(latencies),
        "rpcs_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 3),
    }


async def measure(target: str, token: str, concurrency: int, duration: float) -> dict[str, Any]:
    md = (("authorization", f"Bearer {token}"),)
    async with aio.insecure_channel(target) as channel:
        kv = pb_grpc.KVStub(channel)

        async def put(i: int) -> None:
            await kv.Put(pb.PutRequest(key=f"k{i % KEYS}", value=VALUE), metadata=md)

        async def get(i: int) -> None:
            await kv.Get(pb.GetRequest(key=f"k{i % KEYS}"), metadata=md)

        items = [pb.PutItem(key=f"k{i}", value=VALUE) for i in range(KEYS)]
        await kv.Batch(pb.BatchRequest(put=pb.BatchPut(items=items)), metadata=md)  # every key Get reads
        await drive(put, concurrency, 1.0)  # warm-up
        await drive(get, concurrency, 1.0)
        return {"put": await drive(put, concurrency, duration), "get": await drive(get, concurrency, duration)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per operation")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kvstore-grpc-bench-"))
    data = RedisProcess(work / "data").start()
    queue = RedisProcess(work / "queue", appendonly=False).start()
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "grpc-bench-secret-key-0123456789abcdef",
        "REDIS_URL": data.url,
        "HUEY_REDIS_URL": queue.url,
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_PER_SECOND": "0",  # the tenant's limit never refuses the benchmark
        "QUOTA_MAX_KEYS": "0",
        "QUOTA_MAX_KV_BYTES": "0",
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc_port),
        "GRPC_METRICS_PORT": "0",
    }
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(http_port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    server = subprocess.Popen([sys.executable, "-m", "app.grpc"], cwd=ROOT, env=env)
    target = f"127.0.0.1:{grpc_port}"
    try:
        wait_for_http(f"http://127.0.0.1:{http_port}/health", api)
        body = {"username": "bench", "email": "bench@example.com", "password": "Secret123"}
        token = httpx.post(f"http://127.0.0.1:{http_port}/api/v1/auth/register", json=body, timeout=30).json()
        asyncio.run(wait_for_grpc(target))
        figures = asyncio.run(measure(target, token["access_token"], args.concurrency, args.duration))
    finally:
        for process in (server, api):
            process.terminate()
            process.wait(20)
        data.stop()
        queue.stop()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "cpus": os.cpu_count(),
        **figures,
    }
    print(f"gRPC kvstore.v1.KV, {args.concurrency} calls in flight, one server process:")
    for name in ("put", "get"):
        row = figures[name]
        print(f"  {name.title():4} {row['rpcs_per_second']:>9} RPC/s  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"grpc-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
