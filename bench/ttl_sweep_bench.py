"""The TTL sweep's cost follows what expired, not what lives.

Loads a tenant with N live keys and E expired ones (expiry moved into the past, as the test suite
does), runs one sweep and counts the commands the server executed (INFO commandstats, Lua's inner
commands included) and the time. Prints a table and writes bench/results/ttl_sweep.json.

    python -m bench.ttl_sweep_bench
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import redis

from app.config import Settings
from app.kv.store import KV_PUT, write_header
from app.kv.tasks import sweep_expired
from app.platform import keyspace as keys
from app.platform.embedded_redis import RedisProcess
from app.platform.keyspace import KeySchema
from app.platform.scripts import SyncScripts

RESULTS = Path(__file__).resolve().parent / "results"
PAST_MS = 1_000
CASES = [(1_000, 1_000), (100_000, 1_000), (100_000, 10), (100_000, 0)]


def load(client: redis.Redis, settings: Settings, live: int, expired: int) -> None:
    client.flushall()
    kv_put = client.register_script(KV_PUT.source)  # pipelined loading: the raw redis-py script
    tenant = "bench-tenant"
    schema = KeySchema(tenant)
    header = write_header(settings, tenant, "default")
    for start in range(0, live + expired, 2000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 2000, live + expired)):
            ttl = 3_600_000 if i < expired else ""
            args = [*header, f"k{i:07d}", "1", "", ttl, "", "put", "", ""]
            kv_put(keys=[schema.bucket("default")], args=args, client=pipe)
        pipe.execute()
    if expired:
        bucket_id = client.hget(schema.bucket("default"), "id").decode()
        pipe = client.pipeline(transaction=False)
        for i in range(expired):
            pipe.hset(schema.entry(bucket_id, f"k{i:07d}"), "x", PAST_MS)
            pipe.zadd(schema.ttl_index(bucket_id), {f"k{i:07d}": PAST_MS})
        pipe.zadd(schema.ttl_buckets(), {"default": PAST_MS})
        pipe.set(schema.ttl_scheduled(), PAST_MS)
        pipe.zadd(keys.TTL_SCHEDULE, {tenant: PAST_MS})
        pipe.execute()
    # Ten more tenants with live keys only: a sweep must not visit them.
    for t in range(10):
        idle = f"idle{t}"
        args = [*write_header(settings, idle, "default"), "k", "1", "", "", "", "put", "", ""]
        kv_put(keys=[KeySchema(idle).bucket("default")], args=args)


def main() -> None:
    settings = Settings(environment="test", secret_key="x" * 32, quota_max_keys=0, quota_max_kv_bytes=0)
    server = RedisProcess(Path(tempfile.mkdtemp(prefix="kvstore-sweep-")), appendonly=False).start()
    client = redis.Redis(port=server.port)
    rows = []
    try:
        for live, expired in CASES:
            load(client, settings, live, expired)
            client.config_resetstat()
            started = time.perf_counter()
            result = sweep_expired(client, SyncScripts(client), settings)
            elapsed = time.perf_counter() - started
            stats = client.info("commandstats")
            commands = sum(
                v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat")
            )
            rows.append({"live": live, "expired": expired, "removed": result.removed, "tenants_visited": result.tenants,
                         "commands": commands, "ms": round(elapsed * 1000, 1)})  # fmt: skip
    finally:
        client.close()
        server.stop()
    print("".join(f"{h:>9}" for h in ("live", "expired", "removed", "tenants")) + f" {'commands':>9} {'ms':>8}")
    for r in rows:
        cells = (r["live"], r["expired"], r["removed"], r["tenants_visited"])
        print("".join(f"{c:>9}" for c in cells) + f" {r['commands']:>9} {r['ms']:>8}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ttl_sweep.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
