"""Watch fan-out: N SSE watchers of one bucket on one uvicorn process, M writes through the API.

Reports the delay from a write's acknowledgement to its event at each watcher (p50/p99/max), the
events delivered per second, the Redis connections the API holds (one blocking reader serves the
bucket for every watcher), and the API process's memory.

    python -m bench.watch_bench [--watchers 200] [--writes 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from app.platform.embedded_redis import RedisProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


async def watcher(client: httpx.AsyncClient, headers: dict, ready: asyncio.Event, acked: dict, delays: list) -> None:
    async with client.stream("GET", "/api/v1/kv/watch", headers=headers) as response:
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                revision = int(line[4:])
                delays.append(time.perf_counter() - acked.get(revision, time.perf_counter()))
                if revision == acked["last"]:
                    return


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def run(watchers: int, writes: int, url: str, api_pid: int, data: RedisProcess) -> None:
    limits = httpx.Limits(max_connections=watchers + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        body = (
            await client.post(
                "/api/v1/auth/register",
                json={"username": "bench", "email": "bench@example.com", "password": "Secret123"},
            )
        ).json()
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        await client.put("/api/v1/kv/warmup", json={"value": 0}, headers=headers)
        acked: dict = {"last": writes + 1}
        delays: list[float] = []
        events = [asyncio.Event() for _ in range(watchers)]
        tasks = [asyncio.create_task(watcher(client, headers, e, acked, delays)) for e in events]
        await asyncio.gather(*(e.wait() for e in events))
        await asyncio.sleep(0.5)
        rss_before = rss_kib(api_pid)
        connections = redis.Redis(port=data.port).info("clients")["connected_clients"]
        started, api_cpu, own_cpu = time.perf_counter(), cpu_seconds(api_pid), time.process_time()
        for n in range(writes):
            response = await client.put(f"/api/v1/kv/k{n % 100}", json={"value": {"n": n}}, headers=headers)
            acked[response.json()["metadata"]["revision"]] = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        elapsed = time.perf_counter() - started
        api_cpu, own_cpu = cpu_seconds(api_pid) - api_cpu, time.process_time() - own_cpu
    delays.sort()
    ms = [d * 1000 for d in delays]
    print(f"watchers {watchers}, writes {writes}, events delivered {len(delays)} in {elapsed:.2f} s")
    print(f"  {len(delays) / elapsed:,.0f} events/s; write -> event delay ms: p50 {statistics.median(ms):.1f}, "
          f"p99 {ms[int(len(ms) * 0.99)]:.1f}, max {ms[-1]:.1f}")  # fmt: skip
    print(f"  CPU seconds: API process {api_cpu:.1f}, this client process {own_cpu:.1f}")
    print(f"  data Redis clients while {watchers} streams were open: {connections}")
    print(f"  API RSS: {rss_before // 1024} MiB with the streams open, {rss_kib(api_pid) // 1024} MiB after")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--writes", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = RedisProcess(Path(tmp) / "data").start()
        queue = RedisProcess(Path(tmp) / "queue", appendonly=False).start()
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": data.url,
            "HUEY_REDIS_URL": queue.url,
            "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
            "ENVIRONMENT": "test",
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_SECOND": "0",
            "MAX_WATCH_STREAMS_PER_TENANT": str(args.watchers + 10),
        }
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--no-access-log"],
            cwd=ROOT,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            asyncio.run(run(args.watchers, args.writes, url, api.pid, data))
        finally:
            api.terminate()
            api.wait(30)
            data.stop()
            queue.stop()


if __name__ == "__main__":
    main()
