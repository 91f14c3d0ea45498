"""The sweep's cost is proportional to what expired (counted in server commands, not timed)."""

from __future__ import annotations

import redis

from app.kv.store import KV_PUT, write_header
from app.kv.tasks import sweep_expired
from app.platform.keyspace import KeySchema
from app.platform.scripts import SyncScripts
from tests.support.storage import expire_for_sweep


def test_sweep_cost_follows_the_expired_set(settings):
    """Commands the server runs during a sweep grow with the expired keys, not the live ones."""
    client = redis.Redis.from_url(settings.redis_url)
    kv_put = client.register_script(KV_PUT.source)  # pipelined loading: the raw redis-py script
    kv_args = write_header(settings, "t1", "default")

    def load(n_live: int, n_expiring: int) -> None:
        client.flushall()
        schema = KeySchema("t1")
        pipe = client.pipeline(transaction=False)
        for i in range(n_live + n_expiring):
            ttl = 3_600_000 if i < n_expiring else ""
            args = [*kv_args, f"k{i:06d}", "1", "", ttl, "", "put", "", ""]
            kv_put(keys=[schema.bucket("default")], args=args, client=pipe)
        pipe.execute()
        for i in range(n_expiring):
            expire_for_sweep(client, "t1", "default", f"k{i:06d}")

    def commands_of_sweep() -> int:
        client.config_resetstat()
        assert sweep_expired(client, SyncScripts(client), settings).removed > 0
        stats = client.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))

    load(100, 20)
    few_live = commands_of_sweep()
    load(5000, 20)
    many_live = commands_of_sweep()
    load(100, 60)
    more_expired = commands_of_sweep()
    client.close()
    # 50x the live keys: the same work (within noise such as stream trimming) ...
    assert abs(many_live - few_live) <= few_live * 0.05
    # ... 3x the expired keys: about 3x the work.
    assert 2.5 * few_live <= more_expired <= 3.5 * few_live
