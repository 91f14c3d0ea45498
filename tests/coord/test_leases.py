"""Leases: grant, keepalive, show, revoke; keys attached to them (on one Redis and on a cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.kv.tasks import sweep_expired
from app.platform.keyspace import KeySchema
from app.platform.scripts import SyncScripts
from tests.support.kv_api import Api

pytestmark = pytest.mark.contract


async def grant(api: Api, ttl: int = 30) -> dict[str, Any]:
    response = await api.raw("POST", "/api/v1/leases", json={"ttl": ttl})
    assert response.status_code == 201, response.text
    return response.json()


def feed(sync_redis, tenant_id: str, bucket: str = "default") -> list[tuple[bytes, bytes]]:  # type: ignore[no-untyped-def]
    schema = KeySchema(tenant_id)
    bucket_id = sync_redis.hget(schema.bucket(bucket), "id").decode()
    return [(f[b"op"], f[b"key"]) for _, f in sync_redis.xrange(schema.feed(bucket_id))]


def feed_bytes(sync_redis, tenant_id: str, bucket: str = "default") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(the bytes of the bucket's feed events counted by a recount, the bucket's ``fb`` counter)."""
    schema = KeySchema(tenant_id)
    bucket_id, counted = sync_redis.hmget(schema.bucket(bucket), "id", "fb")
    events = sync_redis.xrange(schema.feed(bucket_id.decode()))
    return sum(len(k) + len(v) for _, fields in events for k, v in fields.items()), int(counted or 0)


async def test_grant_show_keepalive_revoke(api: Api):
    lease = await grant(api, 30)
    assert len(lease["id"]) == 16 and lease["ttl"] == 30
    shown = (await api.raw("GET", f"/api/v1/leases/{lease['id']}")).json()
    assert 29 <= shown["remaining"] <= 30 and shown["keys"] == []
    await asyncio.sleep(0.05)
    renewed = (await api.raw("POST", f"/api/v1/leases/{lease['id']}/keepalive")).json()
    assert renewed["expires_at"] > lease["expires_at"] and renewed["ttl"] == 30
    revoked = await api.raw("DELETE", f"/api/v1/leases/{lease['id']}")
    assert revoked.status_code == 200 and revoked.json()["deleted"] == []
    for method, path in (("GET", ""), ("POST", "/keepalive"), ("DELETE", "")):
        gone = await api.raw(method, f"/api/v1/leases/{lease['id']}{path}")
        assert gone.status_code == 404 and gone.json()["code"] == "lease_not_found"


async def test_ttl_limits(api: Api):
    for ttl in (0, 86_401, 1.5, "5"):
        assert (await api.raw("POST", "/api/v1/leases", json={"ttl": ttl})).status_code == 422
    assert (await api.raw("GET", "/api/v1/leases/not-an-id")).status_code == 404


async def test_keys_attached_expire_with_the_lease_and_follow_keepalive(api: Api):
    lease = await grant(api, 30)
    by_query = await api.put("a", 1, params={"lease": lease["id"]})
    assert by_query.status_code == 201, by_query.text
    assert by_query.json()["metadata"]["expires_at"] == lease["expires_at"]
    by_body = await api.put("b", 2, lease=lease["id"])
    assert by_body.json()["metadata"]["expires_at"] == lease["expires_at"]
    shown = (await api.raw("GET", f"/api/v1/leases/{lease['id']}")).json()
    assert shown["keys"] == [{"bucket": "default", "key": "a"}, {"bucket": "default", "key": "b"}]
    await asyncio.sleep(0.05)
    renewed = (await api.raw("POST", f"/api/v1/leases/{lease['id']}/keepalive")).json()
    a = (await api.get("a")).json()
    assert a["metadata"]["expires_at"] == renewed["expires_at"] and a["metadata"]["version"] == 1
    # Its own expiry cannot be touched: it lives as long as the lease.
    touched = await api.request("POST", "/a/touch", json={"ttl": 5})
    assert touched.status_code == 409 and touched.json()["code"] == "lease_attached"


async def test_revoke_deletes_every_attached_key_in_one_step_with_delete_events(immediate, app, api: Api, sync_redis):  # type: ignore[no-untyped-def]
    await api.create_bucket("jobs")
    lease = await grant(api, 30)
    await api.put("a", 1, params={"lease": lease["id"]})
    await api.bucket("jobs").put("j1", {"w": 1}, params={"lease": lease["id"]})
    await api.must_put("free", 1)
    revoked = (await api.raw("DELETE", f"/api/v1/leases/{lease['id']}")).json()
    assert sorted((k["bucket"], k["key"]) for k in revoked["deleted"]) == [("default", "a"), ("jobs", "j1")]
    assert (await api.get("a")).status_code == 404 and (await api.bucket("jobs").get("j1")).status_code == 404
    assert (await api.get("free")).status_code == 200
    assert feed(sync_redis, api.tenant_id)[-1] == (b"delete", b"a")
    assert feed(sync_redis, api.tenant_id, "jobs")[-1] == (b"delete", b"j1")
    assert int(sync_redis.hget(KeySchema(api.tenant_id).usage(), "keys")) == 1
    await app.state.audit.flush()
    events = (await api.raw("GET", "/api/v1/audit", params={"limit": 20})).json()["items"]
    assert {(e["action"], e.get("key")) for e in events} >= {("kv.delete_key", "a"), ("kv.delete_key", "j1")}


async def test_keys_are_never_readable_after_the_lease_expires_even_before_the_sweep(api: Api, settings, sync_redis):  # type: ignore[no-untyped-def]
    lease = await grant(api, 1)
    for key in ("a", "b", "c"):
        assert (await api.put(key, key, params={"lease": lease["id"]})).status_code == 201
    await asyncio.sleep(1.05)
    for key in ("a", "b", "c"):
        assert (await api.get(key)).status_code == 404
    assert (await api.list()).json()["items"] == []
    assert (await api.raw("GET", f"/api/v1/leases/{lease['id']}")).status_code == 404
    assert (await api.put("d", 1, params={"lease": lease["id"]})).status_code == 404
    # The sweep then deletes them, an `expire` event each.
    sweep_expired(sync_redis, SyncScripts(sync_redis), settings)
    assert sorted(feed(sync_redis, api.tenant_id)[-3:]) == [(b"expire", b"a"), (b"expire", b"b"), (b"expire", b"c")]


async def test_a_key_written_with_an_unknown_lease_or_with_a_ttl_too_is_refused(api: Api):
    unknown = await api.put("a", 1, params={"lease": "0123456789abcdef"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "lease_not_found"
    lease = await grant(api)
    both = await api.put("a", 1, ttl=5, lease=lease["id"])
    assert both.status_code == 422
    assert (await api.get("a")).status_code == 404


async def test_a_lease_holds_at_most_max_lease_keys(api: Api, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("app.kv.coord_store.MAX_LEASE_KEYS", 2)
    lease = await grant(api)
    for key in ("a", "b"):
        assert (await api.put(key, 1, lease=lease["id"])).status_code == 201
    assert (await api.put("a", 2, lease=lease["id"])).status_code == 200  # already attached
    full = await api.put("c", 1, lease=lease["id"])
    assert full.status_code == 409 and full.json()["code"] == "too_many_lease_keys"


async def test_a_transaction_attaches_keys_to_a_lease(api: Api):
    lease = await grant(api, 30)
    response = await api.raw(
        "POST",
        "/api/v1/kv/txn",
        json={
            "compare": [{"key": "leader", "exists": False}],
            "success": [{"op": "put", "key": "leader", "value": "me", "lease": lease["id"]}],
        },
    )
    assert response.json()["succeeded"] is True
    assert response.json()["results"][0]["entry"]["metadata"]["expires_at"] == lease["expires_at"]
    await api.raw("DELETE", f"/api/v1/leases/{lease['id']}")
    assert (await api.get("leader")).status_code == 404


async def test_leases_are_per_tenant(api: Api, other_api: Api):
    lease = await grant(api)
    assert (await other_api.raw("GET", f"/api/v1/leases/{lease['id']}")).status_code == 404
    assert (await other_api.put("x", 1, lease=lease["id"])).status_code == 404
    assert (await other_api.raw("DELETE", f"/api/v1/leases/{lease['id']}")).status_code == 404
    assert (await api.raw("GET", f"/api/v1/leases/{lease['id']}")).status_code == 200


async def test_a_tenant_holds_at_most_max_leases(api: Api, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("app.coord.store.MAX_LEASES", 2)
    await grant(api)
    await grant(api, 1)
    refused = await api.raw("POST", "/api/v1/leases", json={"ttl": 5})
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_leases"
    await asyncio.sleep(1.05)  # an expired lease no longer counts
    await grant(api)


async def test_a_key_rewritten_with_its_own_ttl_keeps_it_and_still_goes_with_the_lease(api: Api):
    lease = await grant(api, 30)
    await api.put("a", 1, lease=lease["id"])
    rewritten = (await api.put("a", 2, ttl=3600)).json()
    assert rewritten["metadata"]["ttl"] > 3500
    revoked = (await api.raw("DELETE", f"/api/v1/leases/{lease['id']}")).json()
    assert revoked["deleted"] == [{"bucket": "default", "key": "a"}]
    assert (await api.get("a")).status_code == 404


async def test_at_expiry_the_sweep_removes_every_key_of_the_lease_in_one_step(api: Api, settings, sync_redis):  # type: ignore[no-untyped-def]
    from app.kv.store import SyncKVStore

    await api.create_bucket("jobs")
    lease = await grant(api, 1)
    for key in ("a", "b"):
        await api.put(key, 1, lease=lease["id"])
    await api.bucket("jobs").put("j", 1, lease=lease["id"])
    await asyncio.sleep(1.05)
    store = SyncKVStore(sync_redis, SyncScripts(sync_redis), settings)
    step = store.sweep_step(api.tenant_id, 1)  # a budget of one: the lease's keys still go together
    assert sorted((e.bucket, e.key) for e in step.removed) == [("default", "a"), ("default", "b"), ("jobs", "j")]
    assert (await api.raw("GET", "/api/v1/kv/buckets/jobs/keys/j/history")).json()["items"][0]["operation"] == "expire"
    assert feed(sync_redis, api.tenant_id, "jobs")[-1] == (b"expire", b"j")
    assert not sync_redis.exists(KeySchema(api.tenant_id).lease_keys(lease["id"]))


async def test_a_sweep_that_ends_a_lease_midway_keeps_the_feed_bytes_exact(api: Api, settings, sync_redis):  # type: ignore[no-untyped-def]
    """The sweep holds a bucket while the lease's keys go with one of its keys, then removes more
    keys of that bucket: every event is counted once (the bucket's fb and the tenant's kv_feed_bytes)."""
    from app.kv.store import SyncKVStore

    await api.create_bucket("jobs")
    lease = await grant(api, 1)
    for key in ("a", "b"):
        await api.put(key, 1, lease=lease["id"])
    await api.bucket("jobs").put("j", 1, lease=lease["id"])
    await api.put("z", 1, ttl=1)  # expires after the lease's keys: swept with the same bucket's table
    await asyncio.sleep(1.2)
    store = SyncKVStore(sync_redis, SyncScripts(sync_redis), settings)
    step = store.sweep_step(api.tenant_id, 100)
    assert sorted(e.key for e in step.removed) == ["a", "b", "j", "z"]
    recounted = {name: feed_bytes(sync_redis, api.tenant_id, name) for name in ("default", "jobs")}
    assert all(events == counted for events, counted in recounted.values()), recounted
    usage = int(sync_redis.hget(KeySchema(api.tenant_id).usage(), "kv_feed_bytes"))
    assert usage == sum(events for events, _ in recounted.values())
