"""KVService without HTTP, on fakeredis (with Lua, through lupa) and on the real data Redis: the
same Lua scripts and the same rules, so the domain layer can be tested where no server runs."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis

from app.config import Settings
from app.kv.model import PutItem
from app.kv.service import KVService
from app.kv.store import KV_BUCKET_PURGE_STEP
from app.platform import keyspace as keys
from app.platform.errors import (
    BucketExists,
    BucketNotFound,
    InvalidInput,
    KeyExists,
    KeyNotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RevisionNotFound,
    VersionConflict,
)
from app.platform.jsonutil import dumps
from app.platform.keyspace import KeySchema
from app.platform.scripts import Scripts

TENANT = "tenant-1"
OTHER = "tenant-2"
PAST_MS = 1_000


@pytest.fixture(params=["fakeredis", "redis"])
async def store(request) -> AsyncIterator[Any]:
    """An async client of a fresh store: fakeredis, or the session's real data Redis."""
    if request.param == "fakeredis":
        client = fakeredis.aioredis.FakeRedis()
    else:
        server = request.getfixturevalue("data_server")
        client = aioredis.Redis(port=server.port)
        await client.flushall()
    yield client
    await client.aclose()


def make_settings(**overrides: Any) -> Settings:
    return Settings(environment="test", secret_key=os.environ["SECRET_KEY"], **overrides)


@pytest.fixture
def kv(store) -> KVService:
    return KVService(store, Scripts(store), make_settings())


async def expire_now(store, key: str, bucket: str = "default", tenant: str = TENANT) -> None:
    schema = KeySchema(tenant)
    bid = (await store.hget(schema.bucket(bucket), "id")).decode()
    await store.hset(schema.entry(bid, key), "x", PAST_MS)
    await store.zadd(schema.ttl_index(bid), {key: PAST_MS})


def value(entry) -> Any:
    return json.loads(entry.value_json)


async def test_put_get_update_versions_and_revisions(kv: KVService):
    first = await kv.put(TENANT, "default", "k", dumps({"a": 1}), tags={"t": "x"}, ttl=60)
    assert first.created and first.version == 1 and first.revision == 1
    assert first.expires_ms == first.updated_ms + 60_000
    second = await kv.put(TENANT, "default", "k", dumps({"a": 2}))
    assert not second.created and second.version == 2 and second.revision == 2
    assert second.expires_ms == first.expires_ms and json.loads(second.tags_json) == {"t": "x"}
    entry, now = await kv.get(TENANT, "default", "k")
    assert value(entry) == {"a": 2} and entry.version == 2 and entry.created_ms == first.created_ms
    assert entry.ttl_seconds(now) in (59, 60)
    rendered = json.loads(entry.render(now))
    assert rendered["key"] == "k" and rendered["value"] == {"a": 2}
    assert rendered["metadata"]["version"] == 2 and rendered["metadata"]["tags"] == {"t": "x"}


async def test_ttl_zero_removes_expiry(kv: KVService):
    await kv.put(TENANT, "default", "k", "1", ttl=60)
    updated = await kv.put(TENANT, "default", "k", "2", ttl=0)
    assert updated.expires_ms is None
    entry, now = await kv.get(TENANT, "default", "k")
    assert entry.expires_ms is None and entry.ttl_seconds(now) is None


async def test_modes_and_preconditions(kv: KVService):
    await kv.put(TENANT, "default", "k", "1", mode="create")
    with pytest.raises(KeyExists):
        await kv.put(TENANT, "default", "k", "2", mode="create")
    with pytest.raises(KeyNotFound):
        await kv.put(TENANT, "default", "absent", "2", mode="update")
    with pytest.raises(VersionConflict) as conflict:
        await kv.put(TENANT, "default", "k", "2", expected_version=5)
    assert conflict.value.extra["current_version"] == 1
    with pytest.raises(PreconditionFailed):
        await kv.put(TENANT, "default", "k", "2", if_none_match=True)
    assert (await kv.put(TENANT, "default", "k", "2", expected_version=1)).version == 2
    assert (await kv.put(TENANT, "default", "new", "1", expected_version=0)).version == 1
    with pytest.raises(VersionConflict):
        await kv.delete(TENANT, "default", "k", expected_version=1)
    await kv.delete(TENANT, "default", "k", expected_version=2)
    with pytest.raises(KeyNotFound):
        await kv.get(TENANT, "default", "k")


async def test_validation_errors(kv: KVService):
    with pytest.raises(InvalidInput):
        await kv.put(TENANT, "default", "bad key", "1")
    with pytest.raises(InvalidInput):
        await kv.put(TENANT, "default", "k" * 257, "1")
    with pytest.raises(PayloadTooLarge) as too_large:
        await kv.put(TENANT, "default", "k", "1" * (2 * 1024 * 1024 + 1))
    assert too_large.value.extra["limit"] == 2 * 1024 * 1024
    with pytest.raises(InvalidInput):
        await kv.put(TENANT, "default", "k", "1", tags={f"t{i}": "v" for i in range(17)})
    with pytest.raises(InvalidInput):
        kv.check_bucket("no spaces")
    assert await kv.count(TENANT, "default") == 0


async def test_expired_key_is_invisible_before_any_sweep(kv: KVService, store):
    await kv.put(TENANT, "default", "gone", "1", ttl=60, tags={"t": "x"})
    await kv.put(TENANT, "default", "live", "2", tags={"t": "x"})
    await expire_now(store, "gone")
    with pytest.raises(KeyNotFound):
        await kv.get(TENANT, "default", "gone")
    assert await kv.count(TENANT, "default") == 1
    page = await kv.list_keys(TENANT, "default", limit=10)
    assert [e.key for e in page.entries] == ["live"] and page.total == 1
    tagged = await kv.list_keys(TENANT, "default", limit=10, tags=[("t", "x")])
    assert [e.key for e in tagged.entries] == ["live"] and tagged.total == 1
    (found,), _ = await kv.get_many(TENANT, "default", ["gone"])
    assert found is None
    with pytest.raises(KeyNotFound):
        await kv.delete(TENANT, "default", "gone")
    recreated = await kv.put(TENANT, "default", "gone", "3")
    assert recreated.created and recreated.version == 2 and recreated.expires_ms is None


async def test_list_cursor_and_offset_paging(kv: KVService, store):
    names = [f"k{i:02d}" for i in range(30)]
    await kv.batch_put(TENANT, "default", [PutItem(n, "1", ttl=600 if n in ("k03", "k17") else None) for n in names])
    await expire_now(store, "k03")
    await expire_now(store, "k17")
    live = [n for n in names if n not in ("k03", "k17")]
    seen, cursor = [], None
    while True:
        page = await kv.list_keys(TENANT, "default", limit=4, cursor=cursor)
        seen += [e.key for e in page.entries]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == live
    by_offset = []
    for offset in range(0, 32, 4):
        by_offset += [e.key for e in (await kv.list_keys(TENANT, "default", limit=4, offset=offset)).entries]
    assert by_offset == live
    prefixed = await kv.list_keys(TENANT, "default", limit=100, prefix="k1")
    assert [e.key for e in prefixed.entries] == [n for n in live if n.startswith("k1")]
    assert prefixed.total == 9


async def test_merge_patch_and_its_preconditions(kv: KVService):
    await kv.put(TENANT, "default", "doc", dumps({"a": {"b": 1, "c": 2}, "d": [1]}))
    patched = await kv.patch(TENANT, "default", "doc", {"a": {"b": None, "e": 3}, "d": [2]})
    assert value(patched) == {"a": {"c": 2, "e": 3}, "d": [2]} and patched.version == 2
    with pytest.raises(VersionConflict):
        await kv.patch(TENANT, "default", "doc", {"x": 1}, expected_version=1)
    with pytest.raises(KeyNotFound):
        await kv.patch(TENANT, "default", "absent", {"x": 1})
    await kv.put(TENANT, "default", "bin", '"aGk="', encoding="base64")
    with pytest.raises(InvalidInput):
        await kv.patch(TENANT, "default", "bin", {"x": 1})


async def test_concurrent_patches_all_land(kv: KVService):
    await kv.put(TENANT, "default", "doc", "{}")
    await asyncio.gather(*(kv.patch(TENANT, "default", "doc", {f"f{i}": i}) for i in range(8)))
    entry, _ = await kv.get(TENANT, "default", "doc")
    assert value(entry) == {f"f{i}": i for i in range(8)} and entry.version == 9


async def test_history_and_past_revisions(kv: KVService):
    await kv.create_bucket(TENANT, "h", description="", history=2, ttl=0, max_value_size=0)
    r1 = (await kv.put(TENANT, "h", "k", '"one"')).revision
    r2 = (await kv.put(TENANT, "h", "k", '"two"')).revision
    records = await kv.history(TENANT, "h", "k", 10)
    assert [(r.version, r.revision, r.operation, r.value) for r in records] == [
        (2, r2, "put", "two"),
        (1, r1, "put", "one"),
    ]
    old, _ = await kv.get(TENANT, "h", "k", revision=r1)
    assert value(old) == "one" and old.version == 1
    await kv.put(TENANT, "h", "k", '"three"')
    with pytest.raises(RevisionNotFound):
        await kv.get(TENANT, "h", "k", revision=r1)
    await kv.delete(TENANT, "h", "k")
    assert [r.operation for r in await kv.history(TENANT, "h", "k", 10)] == ["delete", "put"]
    assert (await kv.put(TENANT, "h", "k", '"four"')).version == 4


async def test_batch_put_is_all_or_nothing(kv: KVService):
    await kv.put(TENANT, "default", "keep", '"before"')
    items = [PutItem("a", "1"), PutItem("keep", '"after"'), PutItem("bad key", "1")]
    with pytest.raises(InvalidInput) as invalid:
        await kv.batch_put(TENANT, "default", items)
    assert invalid.value.extra["index"] == 2 and "item 2" in invalid.value.detail
    with pytest.raises(PayloadTooLarge) as too_large:
        await kv.batch_put(TENANT, "default", [PutItem("a", "1"), PutItem("b", "1" * (2 * 1024 * 1024 + 1))])
    assert "item 1" in too_large.value.detail
    assert await kv.count(TENANT, "default") == 1
    written = await kv.batch_put(TENANT, "default", [PutItem("a", "1"), PutItem("keep", '"after"')])
    assert [(e.key, e.version, e.created) for e in written] == [("a", 1, True), ("keep", 2, False)]


async def test_batch_get_and_delete(kv: KVService):
    await kv.batch_put(TENANT, "default", [PutItem("a", "1"), PutItem("b", "2")])
    found, missing, _ = await kv.batch_get(TENANT, "default", ["b", "x", "a"])
    assert [e.key for e in found] == ["b", "a"] and missing == ["x"]
    assert await kv.batch_delete(TENANT, "default", ["a", "x"]) == (["a"], ["x"])
    assert await kv.count(TENANT, "default") == 1


async def test_buckets(kv: KVService, store):
    info = await kv.create_bucket(TENANT, "b1", description="d", history=3, ttl=30, max_value_size=8)
    assert (info.name, info.history, info.ttl, info.max_value_size) == ("b1", 3, 30, 8)
    with pytest.raises(BucketExists):
        await kv.create_bucket(TENANT, "b1", description="", history=None, ttl=0, max_value_size=0)
    entry = await kv.put(TENANT, "b1", "k", "1")
    assert entry.expires_ms == entry.updated_ms + 30_000
    with pytest.raises(PayloadTooLarge) as too_large:
        await kv.put(TENANT, "b1", "big", '"123456789"')
    assert too_large.value.extra["limit"] == 8
    await kv.put(TENANT, "default", "flat", "1")
    infos = {i.name: i for i in await kv.bucket_infos(TENANT)}
    assert set(infos) == {"b1", "default"} and infos["b1"].keys == 1
    assert (await kv.get_bucket(TENANT, "b1")).revision == 1
    with pytest.raises(BucketNotFound):
        await kv.get_bucket(TENANT, "nope")
    with pytest.raises(BucketNotFound):
        await kv.put(TENANT, "nope", "k", "1")
    bid = info.id
    await kv.delete_bucket(TENANT, "b1")
    with pytest.raises(BucketNotFound):
        await kv.get(TENANT, "b1", "k")
    prefix = KeySchema(TENANT).bucket_prefix(bid)
    leftovers = [k async for k in store.scan_iter(match=f"{prefix}*")]
    assert leftovers == [KeySchema(TENANT).feed(bid).encode()]


async def test_large_bucket_goes_to_the_trash_list(store):
    kv = KVService(store, Scripts(store), make_settings(bucket_inline_delete_max_keys=2))
    await kv.create_bucket(TENANT, "big", description="", history=None, ttl=0, max_value_size=0)
    await kv.batch_put(TENANT, "big", [PutItem(f"k{i}", "1") for i in range(5)])
    bid = (await kv.get_bucket(TENANT, "big")).id
    await kv.delete_bucket(TENANT, "big")
    with pytest.raises(BucketNotFound):
        await kv.count(TENANT, "big")
    assert await store.lrange(KeySchema(TENANT).trash(), 0, -1) == [str(bid).encode()]
    assert TENANT.encode() in await store.smembers(keys.TRASH_TENANTS)
    # The worker's purge step, through the same script.
    scripts = Scripts(store)
    while (
        await scripts.call(
            KV_BUCKET_PURGE_STEP, keys=[KeySchema(TENANT).trash()], args=[keys.tenant_prefix(TENANT), bid, 2]
        )
    )[0]:
        pass
    prefix = KeySchema(TENANT).bucket_prefix(bid)
    assert [k async for k in store.scan_iter(match=f"{prefix}*")] == [KeySchema(TENANT).feed(bid).encode()]
    assert await store.llen(KeySchema(TENANT).trash()) == 0


async def test_usage_counters(kv: KVService, store):
    await kv.put(TENANT, "default", "a", '"xyz"')
    await kv.put(TENANT, "default", "a", "1")
    await kv.batch_put(TENANT, "default", [PutItem("bb", "[1,2]"), PutItem("a", "12")])
    usage = await store.hgetall(KeySchema(TENANT).usage())
    assert int(usage[b"keys"]) == 2 and int(usage[b"kv_bytes"]) == len("a12") + len("bb[1,2]")
    await kv.delete(TENANT, "default", "a")
    await kv.batch_delete(TENANT, "default", ["bb"])
    usage = await store.hgetall(KeySchema(TENANT).usage())
    assert int(usage[b"keys"]) == 0 and int(usage[b"kv_bytes"]) == 0


async def test_tenants_are_isolated(kv: KVService):
    await kv.put(TENANT, "default", "k", '"mine"')
    with pytest.raises(KeyNotFound):
        await kv.get(OTHER, "default", "k")
    assert await kv.count(OTHER, "default") == 0
    assert (await kv.list_keys(OTHER, "default", limit=10)).entries == []
    assert await kv.history(OTHER, "default", "k", 10) == []
    assert await kv.bucket_infos(OTHER) == []


async def test_expiry_is_scheduled_for_the_sweep(kv: KVService, store):
    entry = await kv.put(TENANT, "default", "k", "1", ttl=60)
    assert await store.zscore(keys.TTL_SCHEDULE, TENANT) == entry.expires_ms
    earlier = await kv.put(TENANT, "default", "k2", "1", ttl=10)
    assert await store.zscore(keys.TTL_SCHEDULE, TENANT) == earlier.expires_ms
    await kv.put(TENANT, "default", "k3", "1", ttl=100)
    assert await store.zscore(keys.TTL_SCHEDULE, TENANT) == earlier.expires_ms
