"""Webhook limits: webhooks per tenant, delivery attempts per second, deliveries queued per endpoint
(the change feed keeps the rest), finished deliveries kept; the retry schedule with its jitter."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from app.platform.redis import SyncDataRedis
from app.webhooks.tasks import retry_delay
from tests.support.webhook_receiver import Receiver
from tests.support.webhooks import HOOKS, create_hook, one_round, rounds_until


def test_the_retry_schedule_backs_off_with_jitter_and_repeats_its_last_delay(settings: Settings) -> None:
    settings = settings.model_copy(update={"webhook_retry_schedule": "5,30,120,600,3600"})
    for attempts, base in ((1, 5), (2, 30), (3, 120), (4, 600), (5, 3600), (9, 3600)):
        delays = {retry_delay(settings, attempts) for _ in range(50)}
        assert all(0.8 * base <= delay <= 1.2 * base for delay in delays)
        assert len(delays) > 1  # jitter: not the same instant for every endpoint


def test_a_bad_retry_schedule_is_refused_at_start_up(settings: Settings) -> None:
    with pytest.raises(ValueError):
        Settings(**{**settings.model_dump(), "webhook_retry_schedule": "5,soon"})


async def test_webhooks_per_tenant_are_limited(
    app, client: httpx.AsyncClient, tenant: dict, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    app.state.webhooks._settings = settings.model_copy(update={"max_webhooks_per_tenant": 2})
    for _ in range(2):
        await create_hook(client, tenant["headers"], url="http://127.0.0.1:9/x")
    refused = await client.post(HOOKS, json={"url": "http://127.0.0.1:9/x"}, headers=tenant["headers"])
    assert refused.status_code == 409 and refused.json()["code"] == "too_many_webhooks"


async def test_attempts_per_second_are_limited_per_tenant(
    client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:
    settings = settings.model_copy(update={"webhook_deliveries_per_second": 2})
    headers = tenant["headers"]
    await create_hook(client, headers, url=receiver.url)
    for n in range(8):
        await client.put(f"/api/v1/kv/k{n}", json={"value": n}, headers=headers)
    await one_round(sync_redis, settings)
    assert 1 <= len(receiver.requests) <= 4  # two per second (a round may straddle a second)
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 8)
    assert [event["data"]["value"] for event in receiver.events()] == list(range(8))


async def test_the_queue_is_bounded_and_the_feed_keeps_the_rest(
    app, client: httpx.AsyncClient, tenant: dict, receiver: Receiver, sync_redis: SyncDataRedis, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"webhook_max_backlog": 3, "webhook_deliveries_kept": 2})
    app.state.webhooks._settings = settings
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url)
    receiver.status = 503
    for n in range(10):
        await client.put(f"/api/v1/kv/k{n}", json={"value": n}, headers=headers)
    await rounds_until(sync_redis, settings, lambda: receiver.requests)
    waiting = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers)).json()["items"]
    assert len(waiting) == 3  # the other 7 changes are still only in the change feed
    full = await client.post(f"{HOOKS}/{hook['id']}/test", headers=headers)
    assert full.status_code == 409 and full.json()["code"] == "webhook_backlog_full"
    receiver.status = 200
    await rounds_until(sync_redis, settings, lambda: len(receiver.accepted) >= 10)
    assert [event["data"]["value"] for event in receiver.events()] == list(range(10))
    kept = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers)).json()["items"]
    assert [item["key"] for item in kept] == ["k9", "k8"]  # WEBHOOK_DELIVERIES_KEPT finished ones
