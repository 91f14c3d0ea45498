"""Keys of a bucket: put/get/delete with versions, CAS, TTL and tags, lists, history, batches.

The business rules live here: validation, the merge-patch retry loop, the lookup of past
revisions. Storage is the store's (app/kv/store.py): every mutation is one Lua script that updates
the entry, the bucket revision, the key/tag/TTL indexes, usage counters, history and the change
feed together.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from app.audit.service import InlineEvent
from app.config import Settings
from app.kv.coord_model import Compare, TxnOp, TxnOutcome
from app.kv.coord_store import CoordKVStore
from app.kv.model import BucketInfo, Expected, HistoryRecord, Page, PutItem, StoredEntry, WriteMode, precondition_holds
from app.kv.rules import BUCKET_RE, KEY_RE, check_json_depth, json_text, merge_patch
from app.kv.store import KVStore, expected_arg
from app.kv.txn import run_txn
from app.platform.errors import (
    BucketNotFound,
    Conflict,
    InvalidInput,
    KeyNotFound,
    PayloadTooLarge,
    RevisionNotFound,
    VersionConflict,
)
from app.platform.jsonutil import dumps
from app.platform.metrics import counted
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts

DEFAULT_BUCKET = "default"


class Turns:
    """One asyncio lock per name, alive while someone holds or awaits it: work on one name takes turns."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def turn(self, name: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(name, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[name]


class KVService:
    """The KV operations of the API, on the store of ``redis``."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._store = KVStore(redis, scripts, settings)
        self._settings = settings
        self._patch_turns = Turns()
        self._coord = CoordKVStore(redis, scripts, settings)

    # -- validation -------------------------------------------------------------------------
    @property
    def max_json_depth(self) -> int:
        return self._settings.max_json_depth

    def check_key(self, key: str) -> None:
        # The pattern first: it is ASCII only, so a key that passes can be encoded.
        if not KEY_RE.fullmatch(key) or len(key.encode()) > self._settings.max_key_bytes:
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
        mode: WriteMode = "put",
        expected_version: Expected = None,
        if_none_match: bool = False,
        lease: str | None = None,
        audit: InlineEvent | None = None,
    ) -> StoredEntry:
        """Create or update ``key``; mode 'create' refuses an existing key, 'update' a missing one.
        With ``lease``, the key is attached to that lease and expires with it (no ``ttl`` then).
        ``audit``: the request's audit event, recorded with the write (KVStore.put; not with a lease,
        whose event the audit middleware records as for any request)."""
        self.check_key(key)
        self.check_value(value_json)
        self.check_tags(tags)
        if lease is not None:
            return await self._coord.put_with_lease(
                tenant_id,
                bucket,
                key,
                value_json,
                encoding=encoding,
                tags=tags,
                lease=lease,
                mode=mode,
                expected=expected_arg(expected_version),
                if_none_match=if_none_match,
            )
        return await self._store.put(
            tenant_id,
            bucket,
            key,
            value_json,
            encoding=encoding,
            ttl=ttl,
            tags=tags,
            mode=mode,
            expected_version=expected_version,
            if_none_match=if_none_match,
            audit=audit,
        )

    async def get_many(
        self, tenant_id: str, bucket: str, key_list: Sequence[str]
    ) -> tuple[list[StoredEntry | None], int]:
        """Entries of ``key_list`` (None where absent or expired) and the server time (ms)."""
        return await self._store.get_many(tenant_id, bucket, key_list)

    @counted("get")  # a miss counts as key_not_found
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
            expired = (record.expires_ms is not None and record.expires_ms <= now) or (position == 0 and not live)
            if record.revision == revision and record.operation == "put" and not expired:
                return StoredEntry(
                    key=key,
                    value_json=dumps(record.value).encode(),
                    encoding=record.encoding,
                    version=record.version,
                    revision=revision,
                    created_ms=record.updated_ms,
                    updated_ms=record.updated_ms,
                    expires_ms=record.expires_ms,
                    tags_json=dumps(record.tags or {}).encode(),
                )
        raise RevisionNotFound(_revision_missing(key, revision, [r.revision for r in records if r.operation == "put"]))

    @counted("delete")
    async def delete(self, tenant_id: str, bucket: str, key: str, expected_version: Expected = None) -> int:
        """Delete ``key``; returns the bucket revision of the deletion."""
        self.check_key(key)
        return await self._store.delete(tenant_id, bucket, key, expected_version)

    @counted("patch")
    async def patch(
        self, tenant_id: str, bucket: str, key: str, patch: Any, expected_version: Expected = None
    ) -> StoredEntry:
        """RFC 7396 merge of ``patch`` into the stored value, as a compare-and-swap: a concurrent
        writer makes it retry on the new value (or fail with 412 when the client gave a version).
        Patches of one key in this process take turns, so they never make each other retry; only
        writers elsewhere can, and a patch without a precondition that loses every attempt to them
        is a 409 (never a 412: the client stated no precondition)."""
        try:
            check_json_depth(patch, self._settings.max_json_depth)
        except ValueError as exc:
            errors = [{"field": "body", "message": str(exc), "type": "value_error"}]
            raise InvalidInput(str(exc), errors=errors) from exc
        async with self._patch_turns.turn((tenant_id, bucket, key)):
            for _ in range(self._settings.merge_patch_max_retries):
                current, _ = await self.get(tenant_id, bucket, key)
                if not precondition_holds(expected_version, current.version, current.revision):
                    raise VersionConflict(
                        f"key {key!r} is at version {current.version} (revision {current.revision}), "
                        "not the expected one",
                        current_version=current.version,
                        current_revision=current.revision,
                    )
                if current.encoding:
                    raise InvalidInput("a base64 (binary) value cannot be merge-patched")
                try:
                    merged = json_text(merge_patch(json.loads(current.value_json), patch))
                except ValueError as exc:
                    errors = [{"field": "body", "message": str(exc), "type": "value_error"}]
                    raise InvalidInput(f"the merged value: {exc}", errors=errors) from exc
                try:
                    return await self.put(
                        tenant_id, bucket, key, merged, mode="update", expected_version=current.version
                    )
                except VersionConflict:
                    if expected_version is not None:
                        raise
        raise Conflict(f"key {key!r} changed under every merge attempt; retry")

    @counted("history")
    async def history(self, tenant_id: str, bucket: str, key: str, limit: int) -> list[HistoryRecord]:
        """Past revisions of ``key``, newest first."""
        self.check_key(key)
        return await self._store.history(tenant_id, bucket, key, limit)

    @counted("count")
    async def count(self, tenant_id: str, bucket: str) -> int:
        return await self._store.count(tenant_id, bucket)

    @counted("list")
    async def list_keys(
        self,
        tenant_id: str,
        bucket: str,
        *,
        limit: int,
        cursor: str | None = None,
        offset: int | None = None,
        prefix: str = "",
        tags: Sequence[tuple[str, str]] = (),
        with_total: bool = True,
        values: bool = True,
    ) -> Page:
        """A page of live keys in key order, after ``cursor`` or at ``offset`` (``values`` False:
        metadata only)."""
        return await self._store.list_keys(
            tenant_id,
            bucket,
            limit=limit,
            cursor=cursor,
            offset=offset,
            prefix=prefix,
            tags=tags,
            with_total=with_total,
            with_values=values,
        )

    # -- batches ------------------------------------------------------------------------------
    @counted("batch_put")
    async def batch_put(self, tenant_id: str, bucket: str, items: Sequence[PutItem]) -> list[StoredEntry]:
        """Upsert every item or none (checks run before the first write)."""
        if len(items) > self._settings.max_batch_items:
            raise PayloadTooLarge(
                f"a batch holds at most {self._settings.max_batch_items} items", limit=self._settings.max_batch_items
            )
        for index, item in enumerate(items):
            self._check_item(index, item)
        return await self._store.batch_put(tenant_id, bucket, items)

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
    async def batch_delete(self, tenant_id: str, bucket: str, key_list: Sequence[str]) -> tuple[list[str], list[str]]:
        """Delete every key of ``key_list`` that exists; returns (deleted, missing)."""
        self._check_keys(key_list)
        flags = await self._store.batch_delete(tenant_id, bucket, key_list)
        deleted = [k for k, flag in zip(key_list, flags, strict=True) if flag]
        missing = [k for k, flag in zip(key_list, flags, strict=True) if not flag]
        return deleted, missing

    def _check_keys(self, key_list: Sequence[str]) -> None:
        if len(key_list) > self._settings.max_batch_items:
            raise PayloadTooLarge(
                f"a batch holds at most {self._settings.max_batch_items} keys", limit=self._settings.max_batch_items
            )
        for index, key in enumerate(key_list):
            try:
                self.check_key(key)
            except InvalidInput as exc:
                raise InvalidInput(f"keys[{index}]: {exc.detail}", index=index) from exc

    @counted("exists")
    async def exists(self, tenant_id: str, bucket: str, key: str) -> bool:
        self.check_key(key)
        (entry,), _ = await self.get_many(tenant_id, bucket, [key])
        return entry is not None

    @counted("batch_get")
    async def batch_get(
        self, tenant_id: str, bucket: str, key_list: Sequence[str]
    ) -> tuple[list[StoredEntry], list[str], int]:
        self._check_keys(key_list)
        found, now = await self.get_many(tenant_id, bucket, key_list)
        return [e for e in found if e], [k for k, e in zip(key_list, found, strict=True) if e is None], now

    # -- buckets ------------------------------------------------------------------------------
    @counted("bucket_create")
    async def create_bucket(
        self,
        tenant_id: str,
        name: str,
        *,
        description: str,
        history: int | None,
        ttl: int | None,
        max_value_size: int,
        search: bool = False,
    ) -> BucketInfo:
        self.check_bucket(name)
        history = history or self._settings.default_history
        ttl = self._settings.default_ttl if ttl is None else ttl
        if history > self._settings.max_history:
            raise InvalidInput(f"history is at most {self._settings.max_history} revisions per key")
        max_value_size = min(max_value_size, self._settings.max_value_bytes) if max_value_size else 0
        return await self._store.create_bucket(
            tenant_id,
            name,
            description=description,
            history=history,
            ttl=ttl,
            max_value_size=max_value_size,
            search=search,
        )

    async def bucket_infos(self, tenant_id: str, names: Sequence[str] = ()) -> list[BucketInfo]:
        """The buckets named (those that exist), or every bucket of the tenant."""
        return await self._store.bucket_infos(tenant_id, names)

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
        await self._store.delete_bucket(tenant_id, name)

    # -- coordination: counters, touch, lease-attached writes (app/kv/coord_store.py) ----------
    @property
    def coord_store(self) -> CoordKVStore:
        return self._coord

    @property
    def merge_patch_max_retries(self) -> int:
        return self._settings.merge_patch_max_retries

    @counted("txn")
    async def txn(
        self, tenant_id: str, compares: Sequence[Compare], success: Sequence[TxnOp], failure: Sequence[TxnOp]
    ) -> TxnOutcome:
        """Compares, then the operations of the branch they choose, as one atomic step (app/kv/txn.py)."""
        return await run_txn(self, tenant_id, compares, success, failure)

    @counted("increment")
    async def increment(self, tenant_id: str, bucket: str, key: str, by: int, ttl: int | None) -> StoredEntry:
        """Add ``by`` to the JSON integer value of ``key`` (a missing key starts at 0), as one write."""
        self.check_key(key)
        return await self._coord.increment(tenant_id, bucket, key, by, ttl)

    @counted("touch")
    async def touch(self, tenant_id: str, bucket: str, key: str, ttl: int) -> tuple[StoredEntry, int]:
        """Renew (``ttl`` seconds; 0 removes) the expiry of a live key without writing a new value."""
        self.check_key(key)
        return await self._coord.touch(tenant_id, bucket, key, ttl)


def _revision_missing(key: str, revision: int, kept: list[int]) -> str:
    """Why ``revision`` of ``key`` cannot be read, naming the revisions that can: ``revision`` is the
    bucket's revision at a write (``metadata.revision``), not the key's ``version``, so a user who
    asks for ``?revision=3`` after three writes learns which numbers to ask for."""
    hint = "revision is the bucket's revision at a write (metadata.revision), not the key's version"
    if not kept:
        return f"key {key!r} has no readable revision {revision}: {hint}"
    if revision > max(kept):
        return f"key {key!r} has no revision {revision}: its newest is {max(kept)} ({hint})"
    if revision < min(kept):
        return f"revision {revision} of key {key!r} is not kept any more: the oldest kept is {min(kept)}"
    listed = ", ".join(str(r) for r in sorted(kept)[-10:])
    return f"key {key!r} was not written at revision {revision}: its kept revisions include {listed} ({hint})"
