"""Webhook delivery end to end in-process: the API registers, KV and object writes happen, the
worker's round (app/webhooks/tasks.py) POSTs to a real receiver on 127.0.0.1 that verifies every
signature with the `standardwebhooks` library."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from app.config import Settings
from app.platform.redis import SyncDataRedis
from tests.support.webhook_receiver import Receiver
from tests.support.webhooks import HOOKS, create_hook, one_round, rounds_until

pytestmark = pytest.mark.contract


async def test_a_put_is_delivered_signed_with_the_watch_document(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url, buckets=["*"], events=["kv.put", "kv.delete"])
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    listed = (await client.get(HOOKS, headers=headers)).json()["items"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]

    assert (await client.put("/api/v1/kv/app:theme", json={"value": {"dark": True}}, headers=headers)).status_code in (
        200,
        201,
    )
    await client.delete("/api/v1/kv/app:theme", headers=headers)
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 2)

    receiver.verify_all(hook["secret"])  # standardwebhooks raises on a bad signature
    put, deleted = receiver.events()
    assert put["type"] == "kv.put" and put["bucket"] == "default"
    assert put["data"]["key"] == "app:theme" and put["data"]["value"] == {"dark": True}
    assert deleted["type"] == "kv.delete" and deleted["data"]["revision"] > put["data"]["revision"]
    # The same document a watcher receives: the feed's event rendered by app/watch/events.py.
    assert set(put["data"]) >= {"key", "revision", "version", "value", "tags", "ttl", "expires_at", "updated_at"}
    ids = [request.msg_id for request in receiver.accepted]
    assert len(set(ids)) == 2


async def test_a_wrong_secret_fails_verification(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    from standardwebhooks.webhooks import Webhook as Verifier
    from standardwebhooks.webhooks import WebhookVerificationError

    headers = tenant["headers"]
    await create_hook(client, headers, url=receiver.url)
    await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: receiver.accepted)
    request = receiver.accepted[0]
    with pytest.raises(WebhookVerificationError):
        Verifier("whsec_" + "A" * 32).verify(request.body, request.headers)


async def test_receiver_down_then_up_gets_everything_in_order_per_key_with_the_same_ids(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url, events=["kv.put"])
    receiver.status = 503
    for round_number in range(5):
        for key in ("a", "b", "c"):
            await client.put(f"/api/v1/kv/{key}", json={"value": round_number}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: len(receiver.requests) >= 3)
    assert receiver.accepted == []
    failing = (await client.get(f"{HOOKS}/{hook['id']}", headers=headers)).json()
    assert failing["failing_since"] is not None and failing["enabled"] is True
    first_id = receiver.requests[0].msg_id
    assert {request.msg_id for request in receiver.requests} == {first_id}  # a retry carries the same id

    receiver.status = 200
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 15)
    receiver.verify_all(hook["secret"])
    events = receiver.events()
    assert len({request.msg_id for request in receiver.accepted}) == 15
    for key in ("a", "b", "c"):
        values = [event["data"]["value"] for event in events if event["data"]["key"] == key]
        assert values == [0, 1, 2, 3, 4]  # every change, in revision order
    revisions = [event["data"]["revision"] for event in events]
    assert revisions == sorted(revisions)
    assert not any(event["type"] == "gap" for event in events)
    healthy = (await client.get(f"{HOOKS}/{hook['id']}", headers=headers)).json()
    assert healthy["failing_since"] is None


async def test_a_slow_receiver_is_retried_after_the_timeout(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url)
    receiver.delay = settings.webhook_read_timeout_seconds + 0.5
    await client.put("/api/v1/kv/slow", json={"value": 1}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: receiver.requests)
    page = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers)).json()["items"]
    assert page[0]["state"] == "retrying" and page[0]["last_status"] is None
    assert page[0]["last_response"].startswith("timeout")
    receiver.delay = 0
    await rounds_until(sync_redis, settings, lambda: receiver.accepted)
    assert {request.msg_id for request in receiver.requests} == {receiver.accepted[0].msg_id}
    page = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers)).json()["items"]
    assert page[0]["state"] == "delivered" and page[0]["attempts"] >= 2 and page[0]["last_status"] == 204


async def test_object_events_are_delivered(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    assert (await client.post("/api/v1/objects/buckets", json={"name": "photos"}, headers=headers)).status_code == 201
    hook = await create_hook(
        client, headers, url=receiver.url, buckets=["photos"], events=["object.put", "object.delete"], key_prefix="cat"
    )
    base = "/api/v1/objects/buckets/photos/objects"
    assert (await client.put(f"{base}/cat.jpg", content=b"meow", headers=headers)).status_code in (200, 201)
    await client.put(f"{base}/dog.jpg", content=b"woof", headers=headers)  # not under the key_prefix
    assert (await client.delete(f"{base}/cat.jpg", headers=headers)).status_code == 200
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 2)
    receiver.verify_all(hook["secret"])
    put, deleted = receiver.events()
    assert put["type"] == "object.put" and put["bucket"] == "photos"
    assert put["data"]["name"] == "cat.jpg" and put["data"]["size"] == 4 and put["data"]["version"] == 1
    assert deleted["type"] == "object.delete" and deleted["data"]["name"] == "cat.jpg"
    await asyncio.sleep(0.1)
    await one_round(sync_redis, settings)
    assert len(receiver.accepted) == 2  # dog.jpg is not under the prefix


async def test_filters_by_bucket_event_and_prefix(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    assert (await client.post("/api/v1/kv/buckets", json={"name": "config"}, headers=headers)).status_code == 201
    await create_hook(client, headers, url=receiver.url, buckets=["config"], events=["kv.put"], key_prefix="app:")
    await client.put("/api/v1/kv/app:x", json={"value": 1}, headers=headers)  # bucket default: no
    config = "/api/v1/kv/buckets/config/keys"
    await client.put(f"{config}/other", json={"value": 1}, headers=headers)  # prefix: no
    await client.put(f"{config}/app:y", json={"value": 2}, headers=headers)  # yes
    await client.delete(f"{config}/app:y", headers=headers)  # event type: no
    await rounds_until(sync_redis, settings, lambda: receiver.accepted)
    await one_round(sync_redis, settings)
    assert [(e["bucket"], e["data"]["key"]) for e in receiver.events()] == [("config", "app:y")]


async def test_test_event_deliveries_listing_and_retry(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url)
    sent = await client.post(f"{HOOKS}/{hook['id']}/test", headers=headers)
    assert sent.status_code == 202 and sent.json()["type"] == "webhook.test"
    await rounds_until(sync_redis, settings, lambda: receiver.accepted)
    assert receiver.events()[0]["type"] == "webhook.test"
    for n in range(3):
        await client.put(f"/api/v1/kv/k{n}", json={"value": n}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 4)
    first = (await client.get(f"{HOOKS}/{hook['id']}/deliveries?limit=2", headers=headers)).json()
    assert [item["key"] for item in first["items"]] == ["k2", "k1"]  # newest first
    assert first["items"][0]["state"] == "delivered" and first["items"][0]["latency_ms"] is not None
    second = (
        await client.get(f"{HOOKS}/{hook['id']}/deliveries?cursor={first['next_cursor']}", headers=headers)
    ).json()
    assert [item["type"] for item in second["items"]] == ["kv.put", "webhook.test"] and second["next_cursor"] is None

    again = await client.post(f"{HOOKS}/{hook['id']}/deliveries/{first['items'][1]['id']}/retry", headers=headers)
    assert again.status_code == 202 and again.json()["event_id"] == first["items"][1]["event_id"]
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 5)
    assert receiver.accepted[-1].msg_id == first["items"][1]["event_id"]  # the same webhook-id again
    missing = await client.post(f"{HOOKS}/{hook['id']}/deliveries/999/retry", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "delivery_not_found"


async def test_continuous_failure_disables_the_endpoint_with_a_reason(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    settings = settings.model_copy(update={"webhook_disable_after_seconds": 1})
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url)
    receiver.status = 500
    await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)

    async def disabled() -> dict:
        await one_round(sync_redis, settings)
        body: dict = (await client.get(f"{HOOKS}/{hook['id']}", headers=headers)).json()
        return body if not body["enabled"] else {}

    from tests.support.polling import wait_until

    body = await wait_until(disabled, timeout=10, what="the webhook disabled")
    assert "HTTP 500" in body["disabled_reason"]
    tried = len(receiver.requests)
    await client.put("/api/v1/kv/k", json={"value": 2}, headers=headers)
    await one_round(sync_redis, settings)
    assert len(receiver.requests) == tried  # a disabled endpoint is not called

    receiver.status = 200
    enabled = await client.patch(f"{HOOKS}/{hook['id']}", json={"enabled": True}, headers=headers)
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 2)
    assert [e["data"]["value"] for e in receiver.events()] == [1, 2]  # resumed where it stopped


async def test_webhooks_of_one_tenant_are_invisible_to_another(client: httpx.AsyncClient, tenant: dict) -> None:
    from tests.support.tenants import bearer, register

    hook = await create_hook(client, tenant["headers"], url="http://127.0.0.1:9/x")
    other = bearer(await register(client, "mallory"))
    assert (await client.get(f"{HOOKS}/{hook['id']}", headers=other)).status_code == 404
    assert (await client.delete(f"{HOOKS}/{hook['id']}", headers=other)).status_code == 404
    assert (await client.get(HOOKS, headers=other)).json()["items"] == []
    assert json.loads((await client.get(HOOKS, headers=tenant["headers"])).text)["items"][0]["id"] == hook["id"]


async def test_an_admin_api_key_registers_webhooks_only_within_its_reach(
    client: httpx.AsyncClient, tenant: dict
) -> None:
    from tests.support.api_keys import create_key, key_headers

    narrow = key_headers(
        await create_key(client, tenant["headers"], name="ops", scopes=["admin"], buckets=["config"], key_prefix="app:")
    )
    url = "http://127.0.0.1:9/x"
    for body in (
        {"url": url},
        {"url": url, "buckets": ["other"], "key_prefix": "app:"},
        {"url": url, "buckets": ["config"]},
    ):
        refused = await client.post(HOOKS, json=body, headers=narrow)
        assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope", body
    ok = await client.post(HOOKS, json={"url": url, "buckets": ["config"], "key_prefix": "app:x"}, headers=narrow)
    assert ok.status_code == 201
    reader = key_headers(await create_key(client, tenant["headers"], name="r", scopes=["kv:read"]))
    assert (await client.get(HOOKS, headers=reader)).status_code == 403


async def test_rotate_secret_signs_with_the_new_one_and_delete_stops_deliveries(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    from standardwebhooks.webhooks import Webhook as Verifier
    from standardwebhooks.webhooks import WebhookVerificationError

    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url)
    rotated = await client.post(f"{HOOKS}/{hook['id']}/rotate-secret", headers=headers)
    assert rotated.status_code == 200
    secret = rotated.json()["secret"]
    assert secret != hook["secret"] and secret.startswith("whsec_")
    await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: receiver.accepted)
    receiver.verify_all(secret)
    with pytest.raises(WebhookVerificationError):
        Verifier(hook["secret"]).verify(receiver.accepted[0].body, receiver.accepted[0].headers)

    assert (await client.delete(f"{HOOKS}/{hook['id']}", headers=headers)).status_code == 204
    await client.put("/api/v1/kv/k", json={"value": 2}, headers=headers)
    await one_round(sync_redis, settings)
    assert len(receiver.requests) == 1
    assert (await client.get(f"{HOOKS}/{hook['id']}", headers=headers)).status_code == 404


async def test_object_changes_are_recorded_only_while_a_webhook_wants_them(
    client: httpx.AsyncClient, tenant: dict, sync_redis: SyncDataRedis
) -> None:
    from app.platform.keyspace import KeySchema

    headers = tenant["headers"]
    feed = KeySchema(tenant["tenant_id"]).object_feed()
    await client.post("/api/v1/objects/buckets", json={"name": "photos"}, headers=headers)
    kv_only = await create_hook(client, headers, url="http://127.0.0.1:9/x", events=["kv.put"])
    await client.put("/api/v1/objects/buckets/photos/objects/a", content=b"x", headers=headers)
    assert sync_redis.exists(feed) == 0
    await client.patch(f"{HOOKS}/{kv_only['id']}", json={"events": ["object.put"]}, headers=headers)
    await client.put("/api/v1/objects/buckets/photos/objects/b", content=b"x", headers=headers)
    assert sync_redis.xlen(feed) == 1
    await client.delete(f"{HOOKS}/{kv_only['id']}", headers=headers)
    assert sync_redis.exists(feed) == 0  # dropped with the last webhook that wanted it


async def test_retrying_a_waiting_delivery_makes_it_due_at_once(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    settings = settings.model_copy(update={"webhook_retry_schedule": "3600"})
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url)
    receiver.status = 500
    await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: receiver.requests)
    (waiting,) = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers)).json()["items"]
    assert waiting["state"] == "retrying" and waiting["next_attempt_at"] is not None
    receiver.status = 200
    await one_round(sync_redis, settings)
    assert receiver.accepted == []  # an hour to wait
    retried = await client.post(f"{HOOKS}/{hook['id']}/deliveries/{waiting['id']}/retry", headers=headers)
    assert retried.status_code == 202
    await one_round(sync_redis, settings)
    assert [request.msg_id for request in receiver.accepted] == [waiting["event_id"]]
