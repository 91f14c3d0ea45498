"""/kv/buckets: create, list with key counts, get, delete (inline and through the trash list),
and the bucket settings: history depth, default ttl, max value size."""

from __future__ import annotations

import pytest

from app.kv.tasks import purge_deleted_buckets
from app.platform import keyspace as keys
from app.platform.keyspace import KeySchema
from app.platform.scripts import SyncScripts
from tests.support.apps import app_client
from tests.support.kv_api import Api
from tests.support.problems import assert_problem
from tests.support.storage import bucket_id, force_expiry
from tests.support.tenants import register

pytestmark = pytest.mark.contract

BUCKETS = "/api/v1/kv/buckets"


async def test_create_bucket_returns_201_with_its_settings(api: Api):
    response = await api.raw(
        "POST",
        BUCKETS,
        json={"name": "cfg", "description": "app config", "history": 5, "ttl": 30, "max_value_size": 99},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "cfg" and body["description"] == "app config"
    assert body["history"] == 5 and body["ttl"] == 30 and body["max_value_size"] == 99
    assert body["keys"] == 0 and body["bytes"] == 0 and body["revision"] == 0
    assert body["created_at"].endswith("Z")


async def test_create_bucket_defaults(api: Api):
    body = await api.create_bucket("plain")
    assert body["history"] == 10 and body["ttl"] == 0 and body["max_value_size"] == 0 and body["description"] == ""


async def test_create_existing_bucket_is_409(api: Api):
    await api.create_bucket("cfg")
    assert_problem(await api.raw("POST", BUCKETS, json={"name": "cfg"}), 409, "bucket_exists")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "has space"},
        {"name": "dot.ted"},
        {"name": ""},
        {"name": "x" * 65},
        {"name": "ok", "history": 0},
        {"name": "ok", "history": 1001},
        {"name": "ok", "ttl": -1},
        {"name": "ok", "max_value_size": -1},
        {"name": "ok", "unknown": 1},
    ],
)
async def test_invalid_bucket_is_422(api: Api, body: dict):
    assert_problem(await api.raw("POST", BUCKETS, json=body), 422)
    assert (await api.raw("GET", f"{BUCKETS}/ok")).status_code == 404


async def test_history_of_1000_is_the_maximum(api: Api):
    assert (await api.create_bucket("deep", history=1000))["history"] == 1000


async def test_list_buckets_with_key_counts(api: Api, sync_redis):
    await api.create_bucket("b2")
    await api.create_bucket("b1")
    await api.must_put("flat", 1)
    for key in ("x", "y", "z"):
        await api.bucket("b1").must_put(key, key, ttl=600 if key == "z" else None)
    force_expiry(sync_redis, api.tenant_id, "z", "b1")
    response = await api.raw("GET", BUCKETS)
    assert response.status_code == 200
    items = {b["name"]: b for b in response.json()["items"]}
    assert [b["name"] for b in response.json()["items"]] == ["b1", "b2", "default"]
    assert items["b1"]["keys"] == 2  # the expired key is not counted
    assert items["b2"]["keys"] == 0
    assert items["default"]["keys"] == 1
    assert items["b1"]["revision"] == 3


async def test_get_bucket(api: Api):
    await api.create_bucket("cfg", history=4)
    await api.bucket("cfg").must_put("k", "12345")
    body = (await api.raw("GET", f"{BUCKETS}/cfg")).json()
    assert body["name"] == "cfg" and body["history"] == 4 and body["keys"] == 1
    assert body["bytes"] == len("k") + len('"12345"')
    assert_problem(await api.raw("GET", f"{BUCKETS}/ghost"), 404, "bucket_not_found")
    assert_problem(await api.raw("GET", f"{BUCKETS}/bad%20name"), 422)


async def test_keys_of_an_unknown_bucket_are_404(api: Api):
    ghost = api.bucket("ghost")
    assert_problem(await ghost.put("k", 1), 404, "bucket_not_found")
    assert_problem(await ghost.create("k", 1), 404, "bucket_not_found")
    assert_problem(await ghost.get("k"), 404, "bucket_not_found")
    assert_problem(await ghost.delete("k"), 404, "bucket_not_found")
    assert_problem(await ghost.request("GET", "/stats/count"), 404, "bucket_not_found")
    assert_problem(await ghost.request("GET", "/k/history"), 404, "bucket_not_found")
    assert (await api.raw("GET", f"{BUCKETS}/ghost")).status_code == 404


async def test_buckets_are_separate_namespaces(api: Api):
    await api.create_bucket("one")
    await api.create_bucket("two")
    await api.bucket("one").must_put("k", "in one")
    await api.bucket("two").must_put("k", "in two")
    await api.must_put("k", "flat")
    assert (await api.bucket("one").get("k")).json()["value"] == "in one"
    assert (await api.bucket("two").get("k")).json()["value"] == "in two"
    assert (await api.get("k")).json()["value"] == "flat"
    assert (await api.bucket("default").get("k")).json()["value"] == "flat"


async def test_bucket_ttl_is_the_default_for_new_keys(api: Api):
    await api.create_bucket("sessions", ttl=120)
    sessions = api.bucket("sessions")
    created = await sessions.must_put("s1", 1)
    assert 119 <= created["metadata"]["ttl"] <= 120
    explicit = await sessions.must_put("s2", 1, ttl=10)
    assert 9 <= explicit["metadata"]["ttl"] <= 10
    forever = await sessions.must_put("s3", 1, ttl=0)
    assert forever["metadata"]["ttl"] is None
    updated = await sessions.must_put("s3", 2)
    assert updated["metadata"]["ttl"] is None  # an update keeps what the key has
    batch = await sessions.request("POST", "/batch", json={"items": [{"key": "s4", "value": 1}]})
    assert 119 <= batch.json()["items"][0]["metadata"]["ttl"] <= 120


async def test_bucket_max_value_size_is_413_naming_the_limit(api: Api):
    await api.create_bucket("tiny", max_value_size=16)
    tiny = api.bucket("tiny")
    assert (await tiny.put("ok", "x" * 14)).status_code == 201  # 16 bytes of JSON text
    body = assert_problem(await tiny.put("big", "x" * 15), 413, "payload_too_large")
    assert "16" in body["detail"]
    assert_problem(await tiny.create("big", "x" * 15), 413)
    assert (await tiny.get("big")).status_code == 404


async def test_bucket_max_value_size_above_the_service_limit_is_capped(api: Api):
    body = await api.create_bucket("huge", max_value_size=10**12)
    assert body["max_value_size"] == 2_097_152


async def test_delete_bucket_removes_keys_history_and_indexes(api: Api, sync_redis):
    await api.create_bucket("doomed")
    doomed = api.bucket("doomed")
    bid = bucket_id(sync_redis, api.tenant_id, "doomed")
    await doomed.must_put("a", 1, tags={"t": "x"}, ttl=600)
    await doomed.must_put("a", 2)
    await doomed.must_put("b", {"v": 1}, tags={"t": "y"})
    await doomed.must_put("c", 3)
    await doomed.delete("c")  # a deleted key's history
    await doomed.must_put("e", 4, ttl=600)
    force_expiry(sync_redis, api.tenant_id, "e", "doomed")  # an expired, unswept key
    schema = KeySchema(api.tenant_id)
    before = set(sync_redis.scan_iter(match=f"{schema.bucket_prefix(bid)}*"))
    assert schema.history(bid, "c").encode() in before

    response = await api.raw("DELETE", f"{BUCKETS}/doomed")
    assert response.status_code == 200 and "doomed" in response.json()["message"]

    leftovers = set(sync_redis.scan_iter(match=f"{schema.bucket_prefix(bid)}*"))
    # Only the change feed stays a while, for watchers to see the purge; it expires by itself.
    assert leftovers == {schema.feed(bid).encode()}
    assert sync_redis.pttl(schema.feed(bid)) > 0
    assert not sync_redis.exists(schema.bucket("doomed"))
    assert sync_redis.llen(schema.trash()) == 0
    assert_problem(await api.raw("GET", f"{BUCKETS}/doomed"), 404)
    assert_problem(await doomed.get("a"), 404, "bucket_not_found")
    assert_problem(await api.raw("DELETE", f"{BUCKETS}/doomed"), 404, "bucket_not_found")
    assert "doomed" not in [b["name"] for b in (await api.raw("GET", BUCKETS)).json()["items"]]


async def test_recreated_bucket_starts_empty(api: Api):
    await api.create_bucket("again", history=2)
    await api.bucket("again").must_put("k", 1)
    await api.raw("DELETE", f"{BUCKETS}/again")
    body = await api.create_bucket("again")
    assert body["keys"] == 0 and body["history"] == 10
    again = api.bucket("again")
    assert (await again.get("k")).status_code == 404
    assert (await again.list()).json()["items"] == []
    assert (await again.request("GET", "/k/history")).json()["items"] == []
    # Versions continue above the deleted bucket's: an ETag of the old `k` never matches (issue #14).
    assert (await again.must_put("k", 2))["metadata"]["version"] == 2


async def test_delete_of_a_large_bucket_hides_it_at_once_and_queues_the_purge(settings, sync_redis):
    small_inline = settings.model_copy(update={"bucket_inline_delete_max_keys": 5})
    async with app_client(small_inline) as client:
        api = Api(client, await register(client, "big"))
        await api.create_bucket("big")
        big = api.bucket("big")
        items = [{"key": f"k{i}", "value": i, "tags": {"n": str(i % 3)}} for i in range(20)]
        assert (await big.request("POST", "/batch", json={"items": items})).status_code == 200
        deleted = await big.request("POST", "/batch/delete", json={"keys": ["k0", "k1", "k2"]})
        assert deleted.json()["deleted"] == ["k0", "k1", "k2"]
        bid = bucket_id(sync_redis, api.tenant_id, "big")
        schema = KeySchema(api.tenant_id)

        assert (await api.raw("DELETE", f"{BUCKETS}/big")).status_code == 200

        assert_problem(await api.raw("GET", f"{BUCKETS}/big"), 404)
        assert_problem(await big.get("k1"), 404, "bucket_not_found")
        assert_problem(await big.list(), 404, "bucket_not_found")
        assert_problem(await big.request("GET", "/stats/count"), 404, "bucket_not_found")
        assert [b["name"] for b in (await api.raw("GET", BUCKETS)).json()["items"]] == []
        assert sync_redis.lrange(schema.trash(), 0, -1) == [bid.encode()]
        assert api.tenant_id.encode() in sync_redis.smembers(keys.TRASH_TENANTS)
        # Usage drops at once, though the worker still has the keys to purge.
        usage = sync_redis.hgetall(schema.usage())
        assert int(usage[b"keys"]) == 0 and int(usage[b"kv_bytes"]) == 0
        # A bucket of the same name is a new incarnation: none of the old keys show.
        await api.create_bucket("big")
        assert (await big.get("k3")).status_code == 404
        assert (await big.list()).json()["total"] == 0

        # The worker's purge leaves nothing of the old incarnation but its expiring feed.
        assert sync_redis.exists(schema.entry(bid, "k3")) and sync_redis.exists(schema.history(bid, "k0"))
        assert purge_deleted_buckets(sync_redis, SyncScripts(sync_redis), settings) == 1
        leftovers = set(sync_redis.scan_iter(match=f"{schema.bucket_prefix(bid)}*"))
        assert leftovers == {schema.feed(bid).encode()}
        assert sync_redis.llen(schema.trash()) == 0


async def test_delete_unknown_bucket_is_404(api: Api):
    assert_problem(await api.raw("DELETE", f"{BUCKETS}/ghost"), 404, "bucket_not_found")
