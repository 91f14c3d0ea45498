"""Keys of a bucket: put/get/delete with versions, CAS, TTL and tags, lists, history, batches.

Every mutation is one Lua script (app/<capability>/lua/kv_*.lua) that updates the entry, the bucket
revision, the key/tag/TTL indexes, usage counters, history and the change feed together.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.kv.schemas import BUCKET_RE, KEY_RE, check_json_depth, dumps, iso_ms
from app.platform import keyspace as keys
from app.platform.errors import (
    BucketExists,
    BucketNotFound,
    InvalidInput,
    KeyExists,
    KeyNotFound,
    KVStoreError,
    PayloadTooLarge,
    PreconditionFailed,
    QuotaExceeded,
    RevisionNotFound,
    StorageQuotaExceeded,
    VersionConflict,
)
from app.platform.keyspace import KeySchema
from app.platform.metrics import counted
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import Scripts

DEFAULT_BUCKET = "default"


@dataclass(slots=True)
class StoredEntry:
    """One key as stored: the value stays JSON text (bytes) from Redis to the response."""

    key: str
    value_json: bytes
    encoding: str | None
    version: int
    revision: int
    created_ms: int
    updated_ms: int
    expires_ms: int | None
    tags_json: bytes
    created: bool = False

    @classmethod
    def from_fields(cls, key: str, f: list[bytes]) -> StoredEntry:
        """From the Lua reply [v, enc, ver, rev, c, u, x, tags] ('' for absent fields)."""
        return cls(
            key=key,
            value_json=f[0],
            encoding=f[1].decode() or None,
            version=int(f[2]),
            revision=int(f[3]),
            created_ms=int(f[4]),
            updated_ms=int(f[5]),
            expires_ms=int(f[6]) if f[6] else None,
            tags_json=f[7] or b"{}",
        )

    @classmethod
    def written(cls, key: str, value_json: str, encoding: str | None, result: list[Any]) -> StoredEntry:
        """From a write script's result [version, revision, created_ms, updated_ms, expires_ms|'',
        created 1|0, tags JSON]."""
        ver, rev, created_ms, now, x, created, tags_json = result
        return cls(
            key=key,
            value_json=value_json.encode(),
            encoding=encoding,
            version=int(ver),
            revision=int(rev),
            created_ms=int(created_ms),
            updated_ms=int(now),
            expires_ms=int(x) if x else None,
            tags_json=tags_json,
            created=bool(created),
        )

    def ttl_seconds(self, now_ms: int) -> int | None:
        if self.expires_ms is None:
            return None
        return max(0, math.ceil((self.expires_ms - now_ms) / 1000))

    def render(self, now_ms: int) -> bytes:
        """The entry's JSON response body."""
        ttl = self.ttl_seconds(now_ms)
        expires = f'"{iso_ms(self.expires_ms)}"' if self.expires_ms is not None else "null"
        meta = (
            f'"metadata":{{"version":{self.version},"revision":{self.revision},'
            f'"ttl":{"null" if ttl is None else ttl},"tags":'
        ).encode()
        tail = (
            f',"created_at":"{iso_ms(self.created_ms)}","updated_at":"{iso_ms(self.updated_ms)}",'
            f'"expires_at":{expires}}}}}'
        ).encode()
        encoding = b',"encoding":"base64",' if self.encoding else b","
        # Keys are checked against KEY_RE: no character of a key needs escaping in JSON.
        return b"".join(
            (b'{"key":"', self.key.encode(), b'","value":', self.value_json, encoding, meta, self.tags_json, tail)
        )


@dataclass(slots=True)
class Page:
    entries: list[StoredEntry]
    total: int | None
    next_cursor: str | None
    now_ms: int


@dataclass(slots=True)
class BucketInfo:
    name: str
    id: int
    revision: int
    keys: int
    bytes: int
    history: int
    ttl: int
    max_value_size: int
    description: str
    created_ms: int


@dataclass(slots=True)
class PutItem:
    key: str
    value_json: str
    encoding: str | None = None
    ttl: int | None = None
    tags: dict[str, str] | None = field(default=None)


_ERRORS: dict[str, type[KVStoreError]] = {
    "key_exists": KeyExists,
    "key_not_found": KeyNotFound,
    "bucket_not_found": BucketNotFound,
    "bucket_exists": BucketExists,
    "precondition_failed": PreconditionFailed,
    "version_conflict": VersionConflict,
}


def write_header(settings: Settings, tenant_id: str, bucket: str) -> list[Any]:
    """The ARGV header every KV write script starts with (see app/<capability>/lua/_kv_lib.lua)."""
    return [
        keys.tenant_prefix(tenant_id),
        bucket,
        settings.default_history,
        settings.watch_stream_maxlen,
        settings.feed_value_max_bytes,
        settings.deleted_history_ttl_seconds * 1000,
        settings.quota_max_keys,
        settings.quota_max_kv_bytes,
    ]


def quota_error(detail: str) -> KVStoreError:
    """The problem for a Lua 'quota_exceeded' reply ('<quota> <limit> <usage>'): 413 for bytes, 429 for counts."""
    name, limit, used = detail.split()
    message = f"quota {name} exceeded: limit {limit}, current usage {used}"
    if name.endswith("bytes"):
        return StorageQuotaExceeded(message, quota=name, limit=int(limit), usage=int(used))
    return QuotaExceeded(message, quota=name, limit=int(limit), usage=int(used))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


class KVService:
    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._redis = redis
        self._scripts = scripts
        self._settings = settings

    # -- validation -------------------------------------------------------------------------
    @property
    def max_json_depth(self) -> int:
        return self._settings.max_json_depth

    def check_key(self, key: str) -> None:
        if not key or len(key.encode()) > self._settings.max_key_bytes or not KEY_RE.fullmatch(key):
            raise InvalidInput(
                f"key must be 1-{self._settings.max_key_bytes} bytes of A-Z a-z 0-9 and . _ : @ = + ~ , -",
                errors=[{"field": "key", "message": "invalid key", "type": "value_error"}],
            )

    @staticmethod
    def check_bucket(name: str) -> None:
        if not BUCKET_RE.fullmatch(name):
            raise InvalidInput(
                "bucket name must be 1-64 characters of A-Z a-z 0-9 _ -",
                errors=[{"field": "bucket", "message": "invalid bucket name", "type": "value_error"}],
            )

    def check_value(self, value_json: str | bytes, index: int | None = None) -> None:
        limit = self._settings.max_value_bytes
        # The limit is in bytes of UTF-8, as stored (a str's len() counts characters).
        size = len(value_json) if isinstance(value_json, bytes) else len(value_json.encode())
        if size > limit:
            where = f"item {index}: " if index is not None else ""
            raise PayloadTooLarge(f"{where}value is {size} bytes; the limit is {limit} bytes", limit=limit)

    def check_tags(self, tags: dict[str, str] | None) -> None:
        if tags is not None and len(tags) > self._settings.max_tags:
            raise InvalidInput(f"at most {self._settings.max_tags} tags per key")
        for name, value in (tags or {}).items():
            if len(value.encode()) > self._settings.max_tag_bytes:
                raise InvalidInput(f"tag {name!r}: value over {self._settings.max_tag_bytes} bytes")

    # -- helpers ----------------------------------------------------------------------------
    def _header(self, tenant_id: str, bucket: str) -> list[Any]:
        return write_header(self._settings, tenant_id, bucket)

    @staticmethod
    def _raise(reply: list[Any], bucket: str, key: str = "") -> None:
        code, detail = text(reply[1]), text(reply[2])
        if code == "value_too_large":
            raise PayloadTooLarge(f"value is over bucket {bucket!r}'s limit of {detail} bytes", limit=int(detail))
        if code == "version_conflict":
            raise VersionConflict(
                f"key {key!r} is at version {detail}, not the expected one", current_version=int(detail)
            )
        if code == "precondition_failed":
            raise PreconditionFailed(f"key {key!r} already exists (If-None-Match: *)")
        if code == "key_exists":
            raise KeyExists(f"key {key!r} already exists")
        if code == "key_not_found":
            raise KeyNotFound(f"key {key!r} not found")
        if code == "bucket_not_found":
            raise BucketNotFound(f"bucket {bucket!r} not found")
        if code == "quota_exceeded":
            raise quota_error(detail)
        raise _ERRORS.get(code, KVStoreError)(detail or code)

    async def _schedule_expiry(self, tenant_id: str, expires_ms: int) -> None:
        """The tenant's earliest expiry moved earlier: tell the global sweep schedule."""
        await self._redis.zadd(keys.TTL_SCHEDULE, {tenant_id: expires_ms}, lt=True)

    # -- single keys --------------------------------------------------------------------------
    @counted("put")
    async def put(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        value_json: str,
        *,
        encoding: str | None = None,
        ttl: int | None = None,
        tags: dict[str, str] | None = None,
        mode: str = "put",
        expected_version: int | None = None,
        if_none_match: bool = False,
    ) -> StoredEntry:
        """Create or update ``key``; mode 'create' refuses an existing key, 'update' a missing one."""
        self.check_key(key)
        self.check_value(value_json)
        self.check_tags(tags)
        schema = KeySchema(tenant_id)
        reply = await self._scripts.kv_put(
            keys=[schema.bucket(bucket)],
            args=[
                *self._header(tenant_id, bucket),
                key,
                value_json,
                encoding or "",
                "" if ttl is None else ttl * 1000,
                "" if tags is None else dumps(tags),
                mode,
                "" if expected_version is None else expected_version,
                "1" if if_none_match else "",
            ],
        )
        if reply[0] != b"OK":
            self._raise(reply, bucket, key)
        entry = StoredEntry.written(key, value_json, encoding, [*reply[1:7], reply[8]])
        if reply[7] and entry.expires_ms is not None:
            await self._schedule_expiry(tenant_id, entry.expires_ms)
        return entry

    @counted("get")
    async def get_many(self, tenant_id: str, bucket: str, key_list: list[str]) -> tuple[list[StoredEntry | None], int]:
        """Entries of ``key_list`` (None where absent or expired) and the server time (ms)."""
        reply = await self._scripts.kv_get(
            keys=[KeySchema(tenant_id).bucket(bucket)], args=[keys.tenant_prefix(tenant_id), bucket, *key_list]
        )
        if reply[0] != b"OK":
            self._raise(reply, bucket)
        now = int(reply[2]) if len(reply) > 2 else 0
        return [StoredEntry.from_fields(k, f) if f else None for k, f in zip(key_list, reply[1], strict=True)], now

    async def get(self, tenant_id: str, bucket: str, key: str, revision: int | None = None) -> tuple[StoredEntry, int]:
        self.check_key(key)
        (entry,), now = await self.get_many(tenant_id, bucket, [key])
        if revision is not None and (entry is None or entry.revision != revision):
            return await self._get_revision(tenant_id, bucket, key, revision, now, live=entry is not None), now
        if entry is None:
            raise KeyNotFound(f"key {key!r} not found")
        return entry, now

    async def _get_revision(
        self, tenant_id: str, bucket: str, key: str, revision: int, now: int, live: bool
    ) -> StoredEntry:
        """A kept past revision, never one whose value has expired: neither by its own expiry nor,
        when the key is not live and its newest record is a put, as the current value that expired."""
        records = await self.history(tenant_id, bucket, key, self._settings.max_history)
        for position, record in enumerate(records):
            expired = (record["expires_at"] is not None and record["expires_at"] <= now) or (position == 0 and not live)
            if record["revision"] == revision and record["operation"] == "put" and not expired:
                return StoredEntry(
                    key=key,
                    value_json=dumps(record["value"]).encode(),
                    encoding=record["encoding"],
                    version=record["version"],
                    revision=revision,
                    created_ms=record["updated_at"],
                    updated_ms=record["updated_at"],
                    expires_ms=record["expires_at"],
                    tags_json=dumps(record["tags"] or {}).encode(),
                )
        raise RevisionNotFound(f"revision {revision} of key {key!r} is not kept (any more)")

    @counted("delete")
    async def delete(self, tenant_id: str, bucket: str, key: str, expected_version: int | None = None) -> int:
        """Delete ``key``; returns the bucket revision of the deletion."""
        self.check_key(key)
        reply = await self._scripts.kv_delete(
            keys=[KeySchema(tenant_id).bucket(bucket)],
            args=[*self._header(tenant_id, bucket), key, "" if expected_version is None else expected_version],
        )
        if reply[0] != b"OK":
            self._raise(reply, bucket, key)
        return int(reply[1])

    @counted("patch")
    async def patch(
        self, tenant_id: str, bucket: str, key: str, patch: Any, expected_version: int | None = None
    ) -> StoredEntry:
        """RFC 7396 merge of ``patch`` into the stored value, as a compare-and-swap: a concurrent
        writer makes it retry on the new value (or fail with 412 when the client gave a version)."""
        try:
            check_json_depth(patch, self._settings.max_json_depth)
        except ValueError as exc:
            errors = [{"field": "body", "message": str(exc), "type": "value_error"}]
            raise InvalidInput(str(exc), errors=errors) from exc
        for _ in range(self._settings.merge_patch_max_retries):
            current, _ = await self.get(tenant_id, bucket, key)
            if expected_version is not None and current.version != expected_version:
                raise VersionConflict(
                    f"key {key!r} is at version {current.version}, not {expected_version}",
                    current_version=current.version,
                )
            if current.encoding:
                raise InvalidInput("a base64 (binary) value cannot be merge-patched")
            merged = merge_patch(json.loads(current.value_json), patch)
            try:
                return await self.put(
                    tenant_id, bucket, key, dumps(merged), mode="update", expected_version=current.version
                )
            except VersionConflict:
                if expected_version is not None:
                    raise
        raise VersionConflict(f"key {key!r} changed under every merge attempt; retry")

    @counted("history")
    async def history(self, tenant_id: str, bucket: str, key: str, limit: int) -> list[dict[str, Any]]:
        """Past revisions of ``key``, newest first, timestamps in ms."""
        self.check_key(key)
        reply = await self._scripts.kv_history(
            keys=[KeySchema(tenant_id).bucket(bucket)], args=[keys.tenant_prefix(tenant_id), bucket, key, limit]
        )
        if reply[0] != b"OK":
            self._raise(reply, bucket, key)
        return [json.loads(record) for record in reply[1]]

    @counted("count")
    async def count(self, tenant_id: str, bucket: str) -> int:
        reply = await self._scripts.kv_count(
            keys=[KeySchema(tenant_id).bucket(bucket)], args=[keys.tenant_prefix(tenant_id), bucket]
        )
        if reply[0] != b"OK":
            self._raise(reply, bucket)
        return int(reply[1])

    @counted("list")
    async def list(
        self,
        tenant_id: str,
        bucket: str,
        *,
        limit: int,
        cursor: str | None = None,
        offset: int | None = None,
        prefix: str = "",
        tags: list[tuple[str, str]] | None = None,
        with_total: bool = True,
    ) -> Page:
        """A page of live keys in key order, after ``cursor`` or at ``offset``."""
        mode, start = ("page", str(offset)) if offset is not None else ("cursor", cursor or "")
        reply = await self._scripts.kv_list(
            keys=[KeySchema(tenant_id).bucket(bucket)],
            args=[
                keys.tenant_prefix(tenant_id),
                bucket,
                mode,
                start,
                limit,
                prefix,
                "1" if with_total else "0",
                *(f"{name}={value}" for name, value in tags or []),
            ],
        )
        if reply[0] != b"OK":
            self._raise(reply, bucket)
        _, total, next_cursor, flat, now = reply
        entries = [StoredEntry.from_fields(flat[i].decode(), flat[i + 1 : i + 9]) for i in range(0, len(flat), 9)]
        return Page(
            entries=entries,
            total=None if int(total) < 0 else int(total),
            next_cursor=next_cursor.decode() or None,
            now_ms=int(now),
        )

    # -- batches ------------------------------------------------------------------------------
    @counted("batch_put")
    async def batch_put(self, tenant_id: str, bucket: str, items: list[PutItem]) -> list[StoredEntry]:
        """Upsert every item or none (checks run before the first write)."""
        if len(items) > self._settings.max_batch_items:
            raise PayloadTooLarge(
                f"a batch holds at most {self._settings.max_batch_items} items", limit=self._settings.max_batch_items
            )
        args: list[Any] = self._header(tenant_id, bucket)
        for index, item in enumerate(items):
            self._check_item(index, item)
            args += [
                item.key,
                item.value_json,
                item.encoding or "",
                "" if item.ttl is None else item.ttl * 1000,
                "" if item.tags is None else dumps(item.tags),
            ]
        reply = await self._scripts.kv_batch_put(keys=[KeySchema(tenant_id).bucket(bucket)], args=args)
        if reply[0] != b"OK":
            index = int(reply[3]) if len(reply) > 3 else 0
            try:
                self._raise(reply, bucket, items[index].key)
            except KVStoreError as exc:
                exc.detail = f"item {index}: {exc.detail}"
                exc.extra["index"] = index
                raise
        _, schedule, results = reply
        entries = [
            StoredEntry.written(item.key, item.value_json, item.encoding, result)
            for item, result in zip(items, results, strict=True)
        ]
        expiries = [e.expires_ms for e in entries if e.expires_ms is not None]
        if schedule and expiries:
            await self._schedule_expiry(tenant_id, min(expiries))
        return entries

    def _check_item(self, index: int, item: PutItem) -> None:
        try:
            self.check_key(item.key)
            self.check_tags(item.tags)
        except InvalidInput as exc:
            raise InvalidInput(
                f"item {index}: {exc.detail}",
                index=index,
                errors=[{"field": f"body.items.{index}", "message": exc.detail, "type": "value_error"}],
            ) from exc
        self.check_value(item.value_json, index)

    @counted("batch_delete")
    async def batch_delete(self, tenant_id: str, bucket: str, key_list: list[str]) -> tuple[list[str], list[str]]:
        """Delete every key of ``key_list`` that exists; returns (deleted, missing)."""
        self._check_keys(key_list)
        reply = await self._scripts.kv_batch_delete(
            keys=[KeySchema(tenant_id).bucket(bucket)], args=[*self._header(tenant_id, bucket), *key_list]
        )
        if reply[0] != b"OK":
            self._raise(reply, bucket)
        deleted = [k for k, flag in zip(key_list, reply[1], strict=True) if flag]
        missing = [k for k, flag in zip(key_list, reply[1], strict=True) if not flag]
        return deleted, missing

    def _check_keys(self, key_list: list[str]) -> None:
        if len(key_list) > self._settings.max_batch_items:
            raise PayloadTooLarge(
                f"a batch holds at most {self._settings.max_batch_items} keys", limit=self._settings.max_batch_items
            )
        for index, key in enumerate(key_list):
            try:
                self.check_key(key)
            except InvalidInput as exc:
                raise InvalidInput(f"keys[{index}]: {exc.detail}", index=index) from exc

    async def batch_get(
        self, tenant_id: str, bucket: str, key_list: list[str]
    ) -> tuple[list[StoredEntry], list[str], int]:
        self._check_keys(key_list)
        found, now = await self.get_many(tenant_id, bucket, key_list)
        return [e for e in found if e], [k for k, e in zip(key_list, found, strict=True) if e is None], now

    # -- buckets ------------------------------------------------------------------------------
    @counted("bucket_create")
    async def create_bucket(
        self, tenant_id: str, name: str, *, description: str, history: int | None, ttl: int, max_value_size: int
    ) -> BucketInfo:
        self.check_bucket(name)
        history = history or self._settings.default_history
        if history > self._settings.max_history:
            raise InvalidInput(f"history is at most {self._settings.max_history} revisions per key")
        max_value_size = min(max_value_size, self._settings.max_value_bytes) if max_value_size else 0
        reply = await self._scripts.kv_bucket_create(
            keys=[KeySchema(tenant_id).bucket(name)],
            args=[
                keys.tenant_prefix(tenant_id),
                name,
                history,
                ttl,
                max_value_size,
                description,
                self._settings.quota_max_buckets,
            ],
        )
        if reply[0] != b"OK":
            if reply[1] == b"quota_exceeded":
                raise quota_error(text(reply[2]))
            raise BucketExists(f"bucket {name!r} already exists")
        return BucketInfo(name, int(reply[1]), 0, 0, 0, history, ttl, max_value_size, description, int(reply[2]))

    async def bucket_infos(self, tenant_id: str, names: list[str] | None = None) -> list[BucketInfo]:
        reply = await self._scripts.kv_bucket_info(
            keys=[KeySchema(tenant_id).buckets()], args=[keys.tenant_prefix(tenant_id), *(names or [])]
        )
        return [
            BucketInfo(
                name=text(r[0]),
                id=int(r[1]),
                revision=int(r[2]),
                keys=int(r[3]),
                bytes=int(r[4]),
                history=int(r[5]),
                ttl=int(r[6]),
                max_value_size=int(r[7]),
                description=text(r[8]),
                created_ms=int(r[9]),
            )
            for r in reply[1]
        ]

    async def get_bucket(self, tenant_id: str, name: str) -> BucketInfo:
        self.check_bucket(name)
        infos = await self.bucket_infos(tenant_id, [name])
        if not infos:
            raise BucketNotFound(f"bucket {name!r} not found")
        return infos[0]

    @counted("bucket_delete")
    async def delete_bucket(self, tenant_id: str, name: str) -> None:
        """Delete a bucket with everything in it; big ones are purged by the worker afterwards."""
        self.check_bucket(name)
        reply = await self._scripts.kv_bucket_delete(
            keys=[KeySchema(tenant_id).bucket(name)],
            args=[
                *self._header(tenant_id, name),
                self._settings.bucket_inline_delete_max_keys,
                self._settings.deleted_feed_ttl_seconds * 1000,
            ],
        )
        if reply[0] != b"OK":
            self._raise(reply, name)
        if not int(reply[2]):
            await self._redis.sadd(keys.TRASH_TENANTS, tenant_id)
