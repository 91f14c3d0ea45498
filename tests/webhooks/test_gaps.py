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
