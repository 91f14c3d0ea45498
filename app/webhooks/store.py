"""Every Redis access of webhooks: the API's (register, change, delete, list, queue a test or a retry,
read deliveries) on the asyncio client, and the worker's (one step per endpoint: pull changes into the
queue, record an attempt, give the lease back) on the sync client. The Lua scripts are in lua/."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from app.platform import keyspace as keys
from app.platform.errors import KVStoreError
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, SyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptError, Scripts, SyncScripts, domain_error
from app.webhooks.model import BacklogFull, Delivery, DeliveryNotFound, TooManyWebhooks, Webhook, WebhookNotFound

CREATE: Final = LuaScript("webhook_create")
UPDATE: Final = LuaScript("webhook_update")
DELETE: Final = LuaScript("webhook_delete")
ENQUEUE: Final = LuaScript("webhook_enqueue")
DELIVERIES: Final = LuaScript("webhook_deliveries")
PULL: Final = LuaScript("webhook_pull")
RECORD: Final = LuaScript("webhook_record")
RELEASE: Final = LuaScript("webhook_release")


def _translate(error: ScriptError) -> KVStoreError:
    if error.code == "webhook_not_found":
        return WebhookNotFound(error.detail)
    if error.code == "delivery_not_found":
        return DeliveryNotFound(error.detail)
    if error.code == "too_many_webhooks":
        return TooManyWebhooks(error.detail)
    if error.code == "webhook_backlog_full":
        return BacklogFull(error.detail)
    return KVStoreError(error.detail or error.code)


class WebhookStore:
    """The API's side."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, feed_maxlen: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._feed_maxlen = feed_maxlen

    async def _call(self, script: LuaScript, tenant_id: str, args: Sequence[Any]) -> list[Any]:
        try:
            return await self._scripts.call(
                script, keys=[KeySchema(tenant_id).webhooks()], args=[keys.tenant_prefix(tenant_id), *args]
            )
        except ScriptError as error:
            raise domain_error(error, _translate) from None

    async def create(self, tenant_id: str, hook: Webhook, limit: int) -> None:
        await self._call(CREATE, tenant_id, [hook.id, hook.to_json(), limit, self._feed_maxlen])
        # The tenant joins the worker's round (a global key: another slot than the tenant's on a cluster).
        await self._redis.sadd(keys.WEBHOOK_TENANTS, tenant_id)

    async def update(self, tenant_id: str, hook_id: str, changes: dict[str, Any]) -> Webhook:
        (raw,) = await self._call(UPDATE, tenant_id, [hook_id, json.dumps(changes), self._feed_maxlen])
        return Webhook.parse(raw)

    async def delete(self, tenant_id: str, hook_id: str) -> None:
        # The tenant stays in WEBHOOK_TENANTS: the worker's round drops a tenant without webhooks (and
        # checks again after, so a webhook registered meanwhile is never left out of the rounds).
        await self._call(DELETE, tenant_id, [hook_id, self._feed_maxlen])

    async def get(self, tenant_id: str, hook_id: str) -> Webhook:
        raw = await self._redis.hget(KeySchema(tenant_id).webhooks(), hook_id)
        if raw is None:
            raise WebhookNotFound(f"No webhook {hook_id}")
        return Webhook.parse(raw)

    async def list_all(self, tenant_id: str) -> list[Webhook]:
        raw = cast(dict[bytes, bytes], await self._redis.hgetall(KeySchema(tenant_id).webhooks()))
        return sorted((Webhook.parse(value) for value in raw.values()), key=lambda hook: (hook.created_ms, hook.id))

    async def enqueue_test(self, tenant_id: str, hook_id: str, now_ms: int, backlog: int, kept: int) -> Delivery:
        (raw,) = await self._call(ENQUEUE, tenant_id, [hook_id, "test", now_ms, 0, backlog, kept])
        return Delivery.parse(raw)

    async def retry(self, tenant_id: str, hook_id: str, seq: int, now_ms: int, backlog: int, kept: int) -> Delivery:
        (raw,) = await self._call(ENQUEUE, tenant_id, [hook_id, "retry", now_ms, seq, backlog, kept])
        return Delivery.parse(raw)

    async def deliveries(self, tenant_id: str, hook_id: str, before: int, limit: int) -> list[Delivery]:
        rows = await self._call(DELIVERIES, tenant_id, [hook_id, before, limit])
        return [Delivery.parse(row) for row in rows]


@dataclass(frozen=True, slots=True)
class Step:
    """What the worker may do next on one webhook."""

    state: str  # due | waiting | idle | throttled | busy | disabled | gone
    head: Delivery | None
    queued: int
    next_ms: int | None
    hook: Webhook | None = None


class SyncWebhookStore:
    """The worker's side."""

    def __init__(self, redis: SyncDataRedis, scripts: SyncScripts) -> None:
        self._redis = redis
        self._scripts = scripts

    def tenants(self) -> list[str]:
        return sorted(text(member) for member in cast(set[bytes], self._redis.smembers(keys.WEBHOOK_TENANTS)))

    def hook_ids(self, tenant_id: str) -> list[str]:
        return sorted(text(hid) for hid in cast(list[bytes], self._redis.hkeys(KeySchema(tenant_id).webhooks())))

    def forget_tenant(self, tenant_id: str) -> None:
        self._redis.srem(keys.WEBHOOK_TENANTS, tenant_id)

    def pull(
        self,
        tenant_id: str,
        hook_id: str,
        token: str,
        *,
        lease_ms: int,
        now_ms: int,
        backlog: int,
        rate: int,
        budget: int,
    ) -> Step:
        state, hook, head, queued, next_ms = self._scripts.call(
            PULL,
            keys=[KeySchema(tenant_id).webhooks()],
            args=[keys.tenant_prefix(tenant_id), hook_id, token, lease_ms, now_ms, backlog, rate, budget],
        )
        return Step(
            text(state),
            Delivery.parse(head) if head else None,
            int(queued or 0),
            int(next_ms) if next_ms else None,
            Webhook.parse(hook) if hook else None,
        )

    def record(
        self,
        tenant_id: str,
        hook_id: str,
        token: str,
        seq: int,
        *,
        ok: bool,
        status: int | None,
        excerpt: str,
        latency_ms: int,
        started_ms: int,
        now_ms: int,
        next_ms: int,
        lease_ms: int,
        disable_after_ms: int,
        kept: int,
        rate: int,
    ) -> Step:
        state, head, next_due = self._scripts.call(
            RECORD,
            keys=[KeySchema(tenant_id).webhooks()],
            args=[
                keys.tenant_prefix(tenant_id),
                hook_id,
                token,
                lease_ms,
                now_ms,
                seq,
                "ok" if ok else "fail",
                status or 0,
                excerpt,
                latency_ms,
                next_ms,
                disable_after_ms,
                kept,
                rate,
                started_ms,
            ],
        )
        return Step(text(state), Delivery.parse(head) if head else None, 0, int(next_due) if next_due else None)

    def release(self, tenant_id: str, hook_id: str, token: str) -> None:
        self._scripts.call(RELEASE, keys=[KeySchema(tenant_id).webhook_lease(hook_id)], args=[token])

    def feed_entry(self, tenant_id: str, bucket_id: str, revision: int) -> tuple[bytes, dict[bytes, bytes]] | None:
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            self._redis.xrange(KeySchema(tenant_id).feed(bucket_id), f"{revision}-0", f"{revision}-0"),
        )
        return entries[0] if entries else None

    def entry_value(self, tenant_id: str, bucket_id: str, key: str) -> tuple[bytes | None, str, int | None]:
        """The key's value now (JSON text), its encoding and revision (None, '', None: no such key)."""
        value, encoding, revision = cast(
            list[bytes | None], self._redis.hmget(KeySchema(tenant_id).entry(bucket_id, key), ["v", "enc", "rev"])
        )
        return value, text(encoding or b""), int(revision) if revision else None
