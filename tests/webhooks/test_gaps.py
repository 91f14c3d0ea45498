"""Changes are read from the change feeds from a stored cursor: a feed trimmed past the cursor is
reported with a `gap` delivery before what follows, never skipped silently; a deleted bucket's last
changes and its purge come first, then the new bucket of that name from its start."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from app.platform.redis import SyncDataRedis
from tests.support.webhook_receiver import Receiver
from tests.support.webhooks import HOOKS, create_hook, one_round, rounds_until

pytestmark = pytest.mark.contract


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"watch_stream_maxlen": 5})


async def test_a_feed_trimmed_past_the_cursor_gives_a_gap_delivery(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    await client.put("/api/v1/kv/first", json={"value": 0}, headers=headers)  # the bucket exists: revision 1
    hook = await create_hook(client, headers, url=receiver.url, events=["kv.put"])
    await client.patch(f"{HOOKS}/{hook['id']}", json={"enabled": False}, headers=headers)
    for n in range(1, 13):  # revisions 2..13; the feed keeps the last 5 (9..13)
        await client.put(f"/api/v1/kv/k{n}", json={"value": n}, headers=headers)
    await one_round(sync_redis, settings)
    assert receiver.requests == []  # disabled: nothing is read, nothing sent
    await client.patch(f"{HOOKS}/{hook['id']}", json={"enabled": True}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 6)
    receiver.verify_all(hook["secret"])
    gap, *rest = receiver.events()
    assert gap["type"] == "gap" and gap["bucket"] == "default"
    assert gap["data"]["feed"] == "kv" and gap["data"]["from_revision"] == 2 and gap["data"]["to_revision"] == 8
    assert [event["data"]["revision"] for event in rest] == [9, 10, 11, 12, 13]
    listed = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers)).json()["items"]
    assert listed[-1]["type"] == "gap" and listed[-1]["state"] == "delivered"


async def test_a_deleted_bucket_ends_with_its_purge_and_a_new_one_is_followed_from_its_start(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    buckets = "/api/v1/kv/buckets"
    assert (await client.post(buckets, json={"name": "cfg"}, headers=headers)).status_code == 201
    await create_hook(client, headers, url=receiver.url, buckets=["cfg"], events=["kv.put", "kv.delete"])
    await client.put(f"{buckets}/cfg/keys/a", json={"value": "old"}, headers=headers)
    assert (await client.delete(f"{buckets}/cfg?force=true", headers=headers)).status_code in (200, 202, 204)
    assert (await client.post(buckets, json={"name": "cfg"}, headers=headers)).status_code == 201
    await client.put(f"{buckets}/cfg/keys/a", json={"value": "new"}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 3)
    await one_round(sync_redis, settings)
    events = receiver.events()
    assert [(e["type"], e["data"].get("value")) for e in events] == [
        ("kv.put", "old"),
        ("kv.purge", None),
        ("kv.put", "new"),
    ]


async def test_a_deleted_buckets_expired_feed_gives_a_gap(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    from app.platform.keyspace import KeySchema

    headers = tenant["headers"]
    buckets = "/api/v1/kv/buckets"
    created = await client.post(buckets, json={"name": "cfg"}, headers=headers)
    bucket_id = str(sync_redis.hget(KeySchema(tenant["tenant_id"]).bucket("cfg"), "id").decode())  # type: ignore[union-attr]
    assert created.status_code == 201
    await create_hook(client, headers, url=receiver.url, buckets=["cfg"], events=["kv.put", "kv.delete"])
    await client.put(f"{buckets}/cfg/keys/a", json={"value": "old"}, headers=headers)
    await client.delete(f"{buckets}/cfg?force=true", headers=headers)
    sync_redis.delete(KeySchema(tenant["tenant_id"]).feed(bucket_id))  # as DELETED_FEED_TTL_SECONDS does
    await rounds_until(sync_redis, settings, lambda: receiver.accepted)
    (gap,) = receiver.events()
    assert gap["type"] == "gap" and gap["bucket"] == "cfg" and gap["data"]["from_revision"] == 1


async def test_an_object_feed_trimmed_past_the_cursor_gives_a_gap(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings, app
) -> None:  # type: ignore[no-untyped-def]
    app.state.webhooks.store._feed_maxlen = 2
    headers = tenant["headers"]
    await client.post("/api/v1/objects/buckets", json={"name": "photos"}, headers=headers)
    hook = await create_hook(client, headers, url=receiver.url, events=["object.put"])
    await client.patch(f"{HOOKS}/{hook['id']}", json={"enabled": False}, headers=headers)
    other = await create_hook(client, headers, url="http://127.0.0.1:9/x", events=["object.put"])  # keeps it on
    await client.patch(f"{HOOKS}/{other['id']}", json={"description": "keeps the object feed on"}, headers=headers)
    for n in range(5):
        await client.put(f"/api/v1/objects/buckets/photos/objects/p{n}", content=b"x", headers=headers)
    await client.delete(f"{HOOKS}/{other['id']}", headers=headers)
    await client.patch(f"{HOOKS}/{hook['id']}", json={"enabled": True}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 1)
    await one_round(sync_redis, settings)
    gap = receiver.events()[0]
    assert gap["type"] == "gap" and gap["data"]["feed"] == "objects" and gap["data"]["from_revision"] == 1
