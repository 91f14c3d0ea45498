"""Webhooks, the API's rules: who may register what, URL safety at registration, the record."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from app.config import Settings
from app.platform.errors import InsufficientScope, InvalidInput
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts
from app.platform.security import AccessClaims
from app.webhooks import safety, signing
from app.webhooks.model import ALL_BUCKETS, EVENT_TYPES, Delivery, UnsafeUrl, Webhook
from app.webhooks.store import WebhookStore

RESOLVE_TIMEOUT_SECONDS = 5.0


class WebhookService:
    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._settings = settings
        self.store = WebhookStore(redis, scripts, settings.webhook_object_feed_maxlen)

    async def check_url(self, url: str) -> None:
        """422 unsafe_webhook_url unless the URL passes the scheme and address checks now."""
        target = safety.parse_target(url, self._settings)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                await safety.resolve_async(target)
        except TimeoutError:
            raise UnsafeUrl(f"the host {target.host!r} did not resolve in time") from None

    def _check_reach(self, claims: AccessClaims, buckets: list[str], key_prefix: str) -> None:
        """An API key registers webhooks only for what it may read itself."""
        if not claims.is_api_key:
            return
        for bucket in buckets:
            if bucket == ALL_BUCKETS and claims.buckets is not None:
                raise InsufficientScope("this API key may not watch every bucket; name its buckets")
            if bucket != ALL_BUCKETS and not claims.allows_bucket(bucket):
                raise InsufficientScope(f"this API key may not use the bucket {bucket[:100]!r}")
        if not key_prefix.startswith(claims.key_prefix):
            raise InsufficientScope(f"the key_prefix must start with this key's own prefix {claims.key_prefix!r}")

    async def create(
        self,
        claims: AccessClaims,
        *,
        url: str,
        buckets: list[str],
        events: list[str],
        key_prefix: str,
        description: str,
        enabled: bool,
    ) -> Webhook:
        self._check_reach(claims, buckets, key_prefix)
        await self.check_url(url)
        now_ms = int(time.time() * 1000)
        hook = Webhook(
            id="wh_" + secrets.token_hex(8),
            url=url,
            secret=signing.new_secret(),
            buckets=tuple(dict.fromkeys(buckets)),
            events=tuple(event for event in EVENT_TYPES if event in set(events)),
            key_prefix=key_prefix,
            description=description,
            enabled=enabled,
            disabled_reason=None,
            failing_since_ms=None,
            created_ms=now_ms,
            updated_ms=now_ms,
        )
        await self.store.create(claims.tenant_id, hook, self._settings.max_webhooks_per_tenant)
        return hook

    async def update(self, claims: AccessClaims, hook_id: str, changes: dict[str, Any]) -> Webhook:
        current = await self.store.get(claims.tenant_id, hook_id)
        buckets = changes.get("buckets", list(current.buckets))
        self._check_reach(claims, buckets, changes.get("key_prefix", current.key_prefix))
        if "url" in changes:
            await self.check_url(changes["url"])
        if "events" in changes:
            changes["events"] = [event for event in EVENT_TYPES if event in set(changes["events"])]
        if "buckets" in changes:
            changes["buckets"] = list(dict.fromkeys(changes["buckets"]))
        if changes.get("enabled") is True:
            changes["disabled_reason"] = None
            changes["failing_since_ms"] = None
        changes["updated_ms"] = int(time.time() * 1000)
        return await self.store.update(claims.tenant_id, hook_id, changes)

    async def rotate_secret(self, claims: AccessClaims, hook_id: str) -> Webhook:
        return await self.store.update(
            claims.tenant_id, hook_id, {"secret": signing.new_secret(), "updated_ms": int(time.time() * 1000)}
        )

    async def get(self, claims: AccessClaims, hook_id: str) -> Webhook:
        return await self.store.get(claims.tenant_id, hook_id)

    async def list_all(self, claims: AccessClaims) -> list[Webhook]:
        return await self.store.list_all(claims.tenant_id)

    async def delete(self, claims: AccessClaims, hook_id: str) -> None:
        await self.store.delete(claims.tenant_id, hook_id)

    async def test(self, claims: AccessClaims, hook_id: str) -> Delivery:
        s = self._settings
        return await self.store.enqueue_test(
            claims.tenant_id, hook_id, int(time.time() * 1000), s.webhook_max_backlog, s.webhook_deliveries_kept
        )

    async def retry(self, claims: AccessClaims, hook_id: str, delivery: str) -> Delivery:
        if not delivery.isascii() or not delivery.isdigit() or len(delivery) > 18:
            raise InvalidInput("a delivery id is a number")
        s = self._settings
        return await self.store.retry(
            claims.tenant_id,
            hook_id,
            int(delivery),
            int(time.time() * 1000),
            s.webhook_max_backlog,
            s.webhook_deliveries_kept,
        )

    async def deliveries(self, claims: AccessClaims, hook_id: str, before: int, limit: int) -> list[Delivery]:
        return await self.store.deliveries(claims.tenant_id, hook_id, before, limit)
