"""Restore a deleted KV bucket from its change feed, kept ``DELETED_FEED_TTL_SECONDS`` after the
deletion (for its watchers): the feed is replayed, twice, page by page. The first pass finds each
key's last event and checks the feed is whole (it starts at revision 1, and every live key's last
write carries its value); the second writes the live keys with ``KVService.batch_put``, in batches.
What the feed cannot give back (a trimmed feed, a value over ``FEED_VALUE_MAX_BYTES``) is refused
with the reason, before anything is written; a write refused mid-way (a quota) drops the half-restored
bucket again and leaves the deletion restorable."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from app.config import Settings
from app.kv.model import PutItem
from app.kv.service import KVService
from app.platform.errors import BucketExists, BucketNotFound
from app.platform.redis import AsyncDataRedis, text
from app.transfer.engine import now_ms
from app.transfer.model import RestoreUnavailable
from app.transfer.store import FeedStore

PAGE = 500
BATCH = 100


@dataclass
class Restored:
    bucket: str
    keys: int
    expired: int
    deleted_at_ms: int


@dataclass
class _Last:
    event_id: str
    live: bool
    has_value: bool


class BucketRestorer:
    def __init__(self, redis: AsyncDataRedis, settings: Settings, kv: KVService) -> None:
        self._feeds = FeedStore(redis)
        self._settings = settings
        self._kv = kv

    async def restore(self, tenant_id: str, name: str) -> Restored:
        self._kv.check_bucket(name)
        window = self._settings.deleted_feed_ttl_seconds
        record = await self._feeds.deleted_bucket(tenant_id, name)
        if record is None or int(record.get("feed_expires") or 0) <= now_ms():
            raise BucketNotFound(f"no bucket {name!r} was deleted in the last {window} s (the restore window)")
        if await self._kv.bucket_infos(tenant_id, [name]):
            raise BucketExists(f"bucket {name!r} exists; delete it first to restore the deleted one")
        bucket_id = str(record["id"])
        last = await self._scan(tenant_id, name, bucket_id, int(record.get("rev", 0)))
        await self._kv.create_bucket(
            tenant_id,
            name,
            description=str(record.get("description") or ""),
            history=int(record.get("history") or 0) or None,
            ttl=int(record.get("ttl") or 0),
            max_value_size=int(record.get("max_value_size") or 0),
        )
        try:
            keys, expired = await self._write(tenant_id, name, bucket_id, last)
        except BaseException:
            # All or nothing: drop the half-restored bucket and keep the deletion restorable.
            await self._kv.delete_bucket(tenant_id, name)
            await self._feeds.remember_deleted_bucket(tenant_id, name, record)
            raise
        await self._feeds.forget_deleted_bucket(tenant_id, name)
        return Restored(name, keys, expired, int(record.get("deleted_at") or 0))

    async def _scan(self, tenant_id: str, name: str, bucket_id: str, final_rev: int) -> dict[str, _Last]:
        last: dict[str, _Last] = {}
        after: str | None = None
        first = True
        while True:
            page = await self._feeds.feed_page(tenant_id, bucket_id, after, PAGE)
            if first:
                if not page:
                    raise RestoreUnavailable(f"bucket {name!r}: its change feed has expired or was released")
                if page[0][0] != "1-0":
                    kept = page[0][0].split("-")[0]
                    raise RestoreUnavailable(
                        f"bucket {name!r}: its change feed keeps revisions {kept}-{final_rev} only (it is capped at "
                        f"WATCH_STREAM_MAXLEN={self._settings.watch_stream_maxlen} events and the tenant's KV bytes); "
                        "older changes are lost, so it cannot be restored"
                    )
                first = False
            for event_id, fields in page:
                op = text(fields.get("op", b""))
                key = text(fields.get("key", b""))
                if op == "put":
                    last[key] = _Last(event_id, True, "v" in fields)
                elif op in ("delete", "expire"):
                    last[key] = _Last(event_id, False, False)
            if len(page) < PAGE:
                break
            after = page[-1][0]
        missing = sorted(key for key, item in last.items() if item.live and not item.has_value)
        if missing:
            raise RestoreUnavailable(
                f"bucket {name!r}: the feed does not hold the value of {len(missing)} key(s) (values over "
                f"FEED_VALUE_MAX_BYTES={self._settings.feed_value_max_bytes} are not copied into it), e.g. "
                f"{', '.join(missing[:5])}"
            )
        return last

    async def _write(self, tenant_id: str, name: str, bucket_id: str, last: dict[str, _Last]) -> tuple[int, int]:
        written = expired = 0
        batch: list[PutItem] = []
        after: str | None = None
        while True:
            page = await self._feeds.feed_page(tenant_id, bucket_id, after, PAGE)
            now = now_ms()
            for event_id, fields in page:
                key = text(fields.get("key", b""))
                final = last.get(key)
                if final is None or not final.live or final.event_id != event_id:
                    continue
                expires = int(fields.get("x") or 0)
                if expires and expires <= now:
                    expired += 1
                    continue
                tags = json.loads(fields.get("tags") or b"{}")
                batch.append(
                    PutItem(
                        key=key,
                        value_json=text(fields["v"]),
                        encoding=text(fields.get("enc", b"")) or None,
                        ttl=max(1, math.ceil((expires - now) / 1000)) if expires else 0,
                        tags=tags if isinstance(tags, dict) else {},
                    )
                )
                if len(batch) >= BATCH:
                    await self._kv.batch_put(tenant_id, name, batch)
                    written += len(batch)
                    batch = []
            if len(page) < PAGE:
                break
            after = page[-1][0]
        if batch:
            await self._kv.batch_put(tenant_id, name, batch)
            written += len(batch)
        return written, expired
