"""A bucket's change feed keeps at least WATCH_STREAM_MAXLEN events, trimmed in steps: once it holds
cap + cap/64 events the oldest go until cap are left (app/kv/lua/_kv_lib.lua feed_append), so a write
pays for a trim once every cap/64 writes, not every time. Its bytes stay counted exactly."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis
from tests.support.kv_api import Api
from tests.support.storage import bucket_id

pytestmark = pytest.mark.contract

CAP = 128  # a step of CAP // 64 = 2 events


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"watch_stream_maxlen": CAP})


async def test_the_feed_keeps_the_last_cap_events_and_trims_in_steps(api: Api, sync_redis: SyncDataRedis) -> None:
    lengths = []
    feed = ""
    for i in range(CAP + 40):
        assert (await api.put(f"k{i}", i)).status_code == 201
        feed = feed or KeySchema(api.tenant_id).feed(bucket_id(sync_redis, api.tenant_id, "default"))
        lengths.append(sync_redis.xlen(feed))
    assert lengths[:CAP] == list(range(1, CAP + 1))
    assert set(lengths[CAP:]) == {CAP, CAP + 1, CAP + 2}  # trimmed back to CAP every third write
    revisions = [int(entry_id.split(b"-")[0]) for entry_id, _ in sync_redis.xrange(feed)]
    assert revisions[-CAP:] == list(range(revisions[-1] - CAP + 1, revisions[-1] + 1))  # no gap among the newest
    counted = sum(len(k) + len(v) for _, fields in sync_redis.xrange(feed) for k, v in fields.items())
    schema = KeySchema(api.tenant_id)
    assert int(sync_redis.hget(schema.bucket("default"), "fb")) == counted
    assert int(sync_redis.hget(schema.usage(), "kv_feed_bytes")) == counted


async def test_a_small_cap_is_kept_exactly(api: Api, sync_redis: SyncDataRedis, settings: Settings) -> None:
    """Below 64 events the step is zero: every write at the cap drops one (the old behaviour)."""
    settings.watch_stream_maxlen = 10  # the app reads it per write (write_header)
    for i in range(15):
        assert (await api.put(f"k{i}", i)).status_code == 201
    feed = KeySchema(api.tenant_id).feed(bucket_id(sync_redis, api.tenant_id, "default"))
    assert sync_redis.xlen(feed) == 10
