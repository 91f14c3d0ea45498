"""What a transaction and a lock acquisition cost, measured in-process: the app on its own
redis-server, one tenant; interleaved blocks of each operation, each figure the median over the
blocks of the wall time per request and the API process's CPU per request (client included), beside
a plain PUT of one key as the yardstick. The Redis side of each is its script's time, from
INFO commandstats (usec_per_call of evalsha) over the same requests.

    python -m bench.coord_bench [--requests 300] [--blocks 5] [--out bench/results/coord.json]

Operations: PUT of one key; POST /kv/txn with 2 compares and 2 puts (a version-guarded transfer
between two keys); POST /kv/{key}/increment; POST /locks/{name} + DELETE /locks/{name} (an
uncontended acquisition and its release, two requests); POST /leases/{id}/keepalive of a lease
with 10 attached keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.inprocess import in_process_stack


async def measure(requests: int, blocks: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, list[float]]] = {}
    async with in_process_stack("coord-bench") as stack:
        http, bearer = stack.http, stack.bearer
        lease = (await http.post("/api/v1/leases", json={"ttl": 3600}, headers=bearer)).json()["id"]
        for i in range(10):
            await http.put(f"/api/v1/kv/leased{i}", params={"lease": lease}, json={"value": i}, headers=bearer)
        await http.put("/api/v1/kv/x", json={"value": 1_000_000}, headers=bearer)
        await http.put("/api/v1/kv/y", json={"value": 0}, headers=bearer)
        state = {"vx": 1, "vy": 1}

        async def put() -> None:
            response = await http.put("/api/v1/kv/k", json={"value": 2}, headers=bearer)
            assert response.status_code == 200, response.text

        async def txn() -> None:
            body = {
                "compare": [{"key": "x", "version": state["vx"]}, {"key": "y", "version": state["vy"]}],
                "success": [{"op": "put", "key": "x", "value": 1}, {"op": "put", "key": "y", "value": 2}],
            }
            response = await http.post("/api/v1/kv/txn", json=body, headers=bearer)
            assert response.json()["succeeded"], response.text
            state["vx"] += 1
            state["vy"] += 1

        async def increment() -> None:
            response = await http.post("/api/v1/kv/n/increment", json={"by": 1}, headers=bearer)
            assert response.status_code in (200, 201), response.text

        async def lock_cycle() -> None:
            got = await http.post("/api/v1/locks/job", json={"lease": lease}, headers=bearer)
            assert got.status_code == 200, got.text
            freed = await http.delete("/api/v1/locks/job", params={"lease": lease}, headers=bearer)
            assert freed.status_code == 200, freed.text

        async def keepalive() -> None:
            response = await http.post(f"/api/v1/leases/{lease}/keepalive", headers=bearer)
            assert response.status_code == 200, response.text

        operations: dict[str, Callable[[], Awaitable[None]]] = {
            "PUT one key": put,
            "txn (2 compares, 2 puts)": txn,
            "increment": increment,
            "lock acquire + release": lock_cycle,
            "lease keepalive (10 keys)": keepalive,
        }
        redis_client = aioredis.from_url(stack.app.state.settings.redis_url)
        for block in range(blocks):
            names = list(operations) if block % 2 == 0 else list(reversed(operations))
            for name in names:
                operation = operations[name]
                for _ in range(20):  # warm
                    await operation()
                await redis_client.config_resetstat()
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(requests):
                    await operation()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                stats = await redis_client.info("commandstats")
                evalsha = stats.get("cmdstat_evalsha", {})
                script_us = float(evalsha.get("usec", 0)) / requests
                row = results.setdefault(name, {"wall_us": [], "cpu_us": [], "redis_script_us": []})
                row["wall_us"].append(wall / requests * 1e6)
                row["cpu_us"].append(cpu / requests * 1e6)
                row["redis_script_us"].append(script_us)
        await redis_client.aclose()
    return {name: {k: round(statistics.median(v), 1) for k, v in row.items()} for name, row in results.items()}


def report(summary: dict[str, dict[str, float]], requests: int, blocks: int) -> None:
    print(f"per request, median of {blocks} blocks of {requests} (in-process, one client, one redis-server):")
    print(f"  {'operation':<28} {'wall':>9} {'API CPU':>9} {'Redis scripts':>14}")
    for name, row in summary.items():
        print(f"  {name:<28} {row['wall_us']:>7.0f}us {row['cpu_us']:>7.0f}us {row['redis_script_us']:>12.0f}us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/coord.json"))
    args = parser.parse_args()
    summary = asyncio.run(measure(args.requests, args.blocks))
    report(summary, args.requests, args.blocks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"requests": args.requests, "blocks": args.blocks, "results": summary}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
