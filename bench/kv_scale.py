"""Does a page, a get and a count cost the same with 100 keys as with 100,000 in one tenant?

Starts its own redis-server, loads keys through KVService.batch_put (chunks of 1000), and for
each tenant size measures the operations the API runs for GET /kv/{key}, GET /kv/stats/count and
a page of 100 (GET /kv?limit=100&cursor=..., GET /kv?page=N&page_size=100, with the total):

- the Redis commands one operation costs, from INFO commandstats deltas (the commands a Lua
  script runs count too; EVALSHA itself is one of them);
- the server time of one operation (EVALSHA usec / calls) and the client round trip (p50, p99).

Scenarios: 100 keys; 100,000 keys; 100,000 keys with 1,000 expired (unswept) keys spread
through the key space; and the same 1,000 expired keys piled up in front of the first page,
the worst case for a page. Prints a table and writes bench/results/kv_scale.json.

    python -m bench.kv_scale [--large 100000] [--expired 1000] [--repeat 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from app.config import Settings
from app.kv.model import PutItem
from app.kv.service import DEFAULT_BUCKET, KVService
from app.platform.embedded_redis import RedisProcess
from app.platform.jsonutil import dumps
from app.platform.keyspace import KeySchema
from app.platform.scripts import Scripts

ROOT = Path(__file__).resolve().parent.parent
RESULT_FILE = ROOT / "bench" / "results" / "kv_scale.json"
TENANT = "bench-tenant"
CHUNK = 1000
PAGE = 100
TAG_VALUES = 10
PAST_MS = 1_000
VALUE = dumps({"name": "bench", "count": 42, "tags": ["a", "b"]})
EXCLUDED = {"cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config"}

Operation = Callable[[], Awaitable[Any]]


def key_name(i: int) -> str:
    return f"k{i:08d}"


def tag_of(i: int) -> dict[str, str]:
    """Every key carries one of TAG_VALUES values of the tag `mod`: each matches 1/TAG_VALUES of the keys."""
    return {"mod": str(i % TAG_VALUES)}


async def load(kv: KVService, start: int, stop: int) -> None:
    for first in range(start, stop, CHUNK):
        items = [PutItem(key_name(i), VALUE, tags=tag_of(i)) for i in range(first, min(first + CHUNK, stop))]
        await kv.batch_put(TENANT, DEFAULT_BUCKET, items)


async def add_expired(client: aioredis.Redis, kv: KVService, names: list[str]) -> None:
    """Keys with a ttl whose expiry is then moved into the past (entry and TTL index), so they
    are expired but no sweep has removed them: what piles up between two sweeps."""
    for first in range(0, len(names), CHUNK):
        await kv.batch_put(TENANT, DEFAULT_BUCKET, [PutItem(n, VALUE, ttl=3600) for n in names[first : first + CHUNK]])
    schema = KeySchema(TENANT)
    bucket_id = (await client.hget(schema.bucket(DEFAULT_BUCKET), "id")).decode()
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hset(schema.entry(bucket_id, name), "x", PAST_MS)
        pipe.zadd(schema.ttl_index(bucket_id), {name: PAST_MS})
    await pipe.execute()


async def measure(client: aioredis.Redis, make_op: Callable[[random.Random], Operation], repeat: int) -> dict:
    """Commands and server time per operation (commandstats deltas), client latency percentiles."""
    rng = random.Random(7)
    ops = [make_op(rng) for _ in range(repeat)]
    await ops[0]()  # scripts loaded, connection warm
    await client.config_resetstat()
    latencies = []
    for op in ops:
        started = time.perf_counter()
        await op()
        latencies.append((time.perf_counter() - started) * 1e6)
    stats = await client.info("commandstats")
    commands = sum(v["calls"] for k, v in stats.items() if k not in EXCLUDED)
    scripts = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    per_command: dict[str, float] = {
        k.removeprefix("cmdstat_"): round(v["calls"] / repeat, 2) for k, v in stats.items() if k not in EXCLUDED
    }
    latencies.sort()
    return {
        "commands_per_op": round(commands / repeat, 2),
        "server_us_per_op": round(scripts["usec"] / max(scripts["calls"], 1), 1),
        "client_p50_us": round(statistics.median(latencies), 1),
        "client_p99_us": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "commands": dict(sorted(per_command.items(), key=lambda kv: -kv[1])),
    }


def operations(kv: KVService, size: int) -> dict[str, Callable[[random.Random], Operation]]:
    """Each operation at a random place in the key space (pages: a full page of 100 after it)."""
    pages = max(size // PAGE, 1)

    def get(rng: random.Random) -> Operation:
        return lambda: kv.get(TENANT, DEFAULT_BUCKET, key_name(rng.randrange(size)))

    def cursor_page(rng: random.Random) -> Operation:
        start = rng.randrange(max(size - PAGE, 1))
        cursor = key_name(start) if start else None
        return lambda: kv.list_keys(TENANT, DEFAULT_BUCKET, limit=PAGE, cursor=cursor)

    def numbered_page(rng: random.Random) -> Operation:
        offset = rng.randrange(pages) * PAGE
        return lambda: kv.list_keys(TENANT, DEFAULT_BUCKET, limit=PAGE, offset=offset)

    def first_page(_: random.Random) -> Operation:
        return lambda: kv.list_keys(TENANT, DEFAULT_BUCKET, limit=PAGE, cursor=None)

    def count(_: random.Random) -> Operation:
        return lambda: kv.count(TENANT, DEFAULT_BUCKET)

    tag_filter = [("mod", "3")]

    def tag_cursor_page(rng: random.Random) -> Operation:
        start = rng.randrange(max(size - PAGE * TAG_VALUES, 1))
        cursor = key_name(start) if start else None
        return lambda: kv.list_keys(
            TENANT, DEFAULT_BUCKET, limit=PAGE, cursor=cursor, tags=tag_filter, with_total=False
        )

    def tag_numbered_page(rng: random.Random) -> Operation:
        offset = rng.randrange(max(pages // TAG_VALUES, 1)) * PAGE
        return lambda: kv.list_keys(TENANT, DEFAULT_BUCKET, limit=PAGE, offset=offset, tags=tag_filter)

    return {
        "get": get,
        "count": count,
        "page of 100 (cursor)": cursor_page,
        "page of 100 (page=N)": numbered_page,
        "first page of 100": first_page,
        "tag page (cursor)": tag_cursor_page,
        "tag page (page=N)": tag_numbered_page,
    }


async def scenario(client: aioredis.Redis, kv: KVService, size: int, repeat: int) -> dict[str, dict]:
    results = {}
    for name, make_op in operations(kv, size).items():
        results[name] = await measure(client, make_op, repeat)
    return results


async def run(large: int, expired: int, repeat: int, small: int = 100) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kvstore-kv-scale-"))
    server = RedisProcess(work / "data", appendonly=False).start()
    client = aioredis.Redis(port=server.port)
    settings = Settings(environment="test", secret_key="kv-scale-bench-secret-0123456789abcdef")
    kv = KVService(client, Scripts(client), settings)
    results: dict[str, dict[str, dict]] = {}
    timings: dict[str, float] = {}
    try:
        started = time.perf_counter()
        await load(kv, 0, small)
        timings[f"load {small}"] = time.perf_counter() - started
        results[f"{small:,} keys"] = await scenario(client, kv, small, repeat)

        started = time.perf_counter()
        await load(kv, small, large)
        timings[f"load to {large}"] = time.perf_counter() - started
        print(f"loaded {large:,} keys in {sum(timings.values()):.1f} s", file=sys.stderr)
        results[f"{large:,} keys"] = await scenario(client, kv, large, repeat)

        # Spread through the key space: one expired key after every large/expired live ones.
        step = max(large // expired, 1)
        await add_expired(client, kv, [f"{key_name(i * step)}~expired" for i in range(expired)])
        results[f"{large:,} keys + {expired:,} expired spread"] = await scenario(client, kv, large, repeat)

        # Piled up in front of the first page ('a...' sorts before 'k...').
        await add_expired(client, kv, [f"a{i:08d}" for i in range(expired)])
        piled = await scenario(client, kv, large, repeat)
        results[f"{large:,} keys + {2 * expired:,} expired, {expired:,} before page 1"] = piled
        dbsize = await client.dbsize()
        info = await client.info("server")
        memory = await client.info("memory")
    finally:
        await client.aclose()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "redis_version": info["redis_version"],
        "repeat": repeat,
        "load_seconds": {k: round(v, 2) for k, v in timings.items()},
        "redis_keys_after_load": dbsize,
        "used_memory_human": memory["used_memory_human"],
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    scenarios = list(report["results"])
    ops = list(report["results"][scenarios[0]])
    print(f"\nper operation: Redis commands / server us (EVALSHA) / client p50 us; {report['repeat']} runs each")
    for scenario_name in scenarios:
        print(f"\n{scenario_name}")
        print(f"  {'operation':<22} {'commands':>9} {'server us':>10} {'p50 us':>8} {'p99 us':>8}  top commands")
        for op in ops:
            r = report["results"][scenario_name][op]
            top = ", ".join(f"{k} {v:g}" for k, v in list(r["commands"].items())[:4])
            print(
                f"  {op:<22} {r['commands_per_op']:>9g} {r['server_us_per_op']:>10g} "
                f"{r['client_p50_us']:>8g} {r['client_p99_us']:>8g}  {top}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", type=int, default=100_000, help="keys in the large tenant")
    parser.add_argument("--expired", type=int, default=1_000, help="expired, unswept keys added")
    parser.add_argument("--repeat", type=int, default=200, help="runs of each operation")
    args = parser.parse_args()
    report = asyncio.run(run(args.large, args.expired, args.repeat))
    print_table(report)
    RESULT_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULT_FILE.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {RESULT_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
