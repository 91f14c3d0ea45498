"""The KV capability's storage: the only code that runs the kv_* Lua scripts (and
ttl_sweep_tenant), builds their ARGV and decodes their replies into the models of
app/kv/model.py. A script's refusal becomes a domain error through :func:`translate`.

Besides the scripts, the plain Redis commands of KV's bookkeeping live here too: the global TTL
schedule (tenants with expiring keys) and the trash of deleted buckets waiting for the worker.

:class:`KVStore` serves the API (asyncio client); :class:`SyncKVStore` the worker's TTL sweep and
bucket purge (blocking client). In script arguments and replies, '' stands for None (not given,
no expiry, ...).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from app.audit.service import InlineEvent
from app.config import Settings
from app.kv.model import (
    AtRevision,
    BucketInfo,
    Expected,
    ExpiredEntry,
    HistoryRecord,
    Page,
    PutItem,
    StoredEntry,
    SweepStep,
    WriteMode,
    expected_versions,
)
from app.platform import keyspace as keys
from app.platform.errors import (
    BucketExists,
    BucketNotFound,
    KeyExists,
    KeyNotFound,
    KVStoreError,
    PayloadTooLarge,
    PreconditionFailed,
    VersionConflict,
)
from app.platform.jsonutil import dumps
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, SyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptArg, ScriptError, Scripts, SyncScripts, domain_error

KV_PUT = LuaScript("kv_put", redis_us=60)
KV_GET = LuaScript("kv_get")
KV_DELETE = LuaScript("kv_delete")
KV_HISTORY = LuaScript("kv_history")
KV_COUNT = LuaScript("kv_count")
KV_LIST = LuaScript("kv_list", redis_us=400)
KV_BATCH_PUT = LuaScript("kv_batch_put")
KV_BATCH_DELETE = LuaScript("kv_batch_delete")
KV_BUCKET_CREATE = LuaScript("kv_bucket_create")
KV_BUCKET_INFO = LuaScript("kv_bucket_info")
KV_BUCKET_DELETE = LuaScript("kv_bucket_delete")
KV_BUCKET_PURGE_STEP = LuaScript("kv_bucket_purge_step")
TTL_SWEEP_TENANT = LuaScript("ttl_sweep_tenant")
KV_RELEASE_HELD = LuaScript("kv_release_held")


def write_header(settings: Settings, tenant_id: str, bucket: str) -> list[ScriptArg]:
    """The ARGV header every KV write script starts with (see app/kv/lua/_kv_lib.lua)."""
    return [
        keys.tenant_prefix(tenant_id),
        bucket,
        settings.default_history,
        settings.watch_stream_maxlen,
        settings.feed_value_max_bytes,
        settings.deleted_history_ttl_seconds * 1000,
        settings.quota_max_keys,
        settings.quota_max_kv_bytes,
        settings.default_ttl,
    ]


def expected_arg(expected: Expected) -> str:
    """The script argument of a compare-and-swap: '' (none), the accepted versions joined by ',', or
    'r<revision>' for a revision precondition (see precondition_matches in _kv_lib.lua)."""
    if isinstance(expected, AtRevision):
        return f"r{expected.revision}"
    versions = expected_versions(expected)
    return "" if versions is None else ",".join(map(str, versions))


def translate(error: ScriptError, bucket: str, key: str = "") -> KVStoreError:
    """The domain error for a KV script's refusal of a write or read of ``key`` in ``bucket``."""
    code, detail = error.code, error.detail
    if code == "value_too_large":
        return PayloadTooLarge(f"value is over bucket {bucket!r}'s limit of {detail} bytes", limit=int(detail))
    if code == "version_conflict":
        version, _, revision = detail.partition(",")
        return VersionConflict(
            f"key {key!r} is at version {version} (revision {revision or 0}), not the expected one",
            current_version=int(version),
            current_revision=int(revision or 0),
        )
    if code == "precondition_failed":
        return PreconditionFailed(f"key {key!r} already exists (If-None-Match: *)")
    if code == "key_exists":
        return KeyExists(f"key {key!r} already exists")
    if code == "key_not_found":
        return KeyNotFound(f"key {key!r} not found")
    if code == "bucket_not_found":
        return BucketNotFound(f"bucket {bucket!r} not found")
    if code == "bucket_exists":
        return BucketExists(f"bucket {bucket!r} already exists")
    return KVStoreError(detail or code)


# -- decoding replies ----------------------------------------------------------------------------


def _entry(key: str, fields: Sequence[bytes]) -> StoredEntry:
    """An entry from its stored fields [v, enc, ver, rev, c, u, x, tags] ('' for absent ones)."""
    return StoredEntry(
        key=key,
        value_json=fields[0],
        encoding=fields[1].decode() or None,
        version=int(fields[2]),
        revision=int(fields[3]),
        created_ms=int(fields[4]),
        updated_ms=int(fields[5]),
        expires_ms=int(fields[6]) if fields[6] else None,
        tags_json=fields[7] or b"{}",
    )


def _written(key: str, value_json: str, encoding: str | None, result: Sequence[Any]) -> StoredEntry:
    """An entry just written, from the script's result [version, revision, created_ms, updated_ms,
    expires_ms|'', created 1|0, tags JSON]."""
    version, revision, created_ms, updated_ms, expires_ms, created, tags_json = result
    return StoredEntry(
        key=key,
        value_json=value_json.encode(),
        encoding=encoding,
        version=int(version),
        revision=int(revision),
        created_ms=int(created_ms),
        updated_ms=int(updated_ms),
        expires_ms=int(expires_ms) if expires_ms else None,
        tags_json=tags_json,
        created=bool(int(created)),
    )


def _history_record(raw: bytes) -> HistoryRecord:
    """A history record, a JSON object written by history_record() in _kv_lib.lua."""
    record = json.loads(raw)
    return HistoryRecord(
        version=record["version"],
        revision=record["revision"],
        operation=record["operation"],
        value=record["value"],
        encoding=record["encoding"],
        tags=record["tags"],
        updated_ms=record["updated_at"],
        expires_ms=record["expires_at"],
    )


SEARCH_STATES = {b"1": "on", b"b": "building", b"d": "dropping"}
"""A bucket's ``search`` field (app/kv/lua/kv_bucket_search.lua) -> its search state; absent: off."""


def _bucket_info(row: Sequence[bytes]) -> BucketInfo:
    """From a kv_bucket_info row [name, id, rev, keys, bytes, history, ttl, max_value_size, description, created,
    search, sbytes]."""
    return BucketInfo(
        name=text(row[0]),
        id=int(row[1]),
        revision=int(row[2]),
        keys=int(row[3]),
        bytes=int(row[4]),
        history=int(row[5]),
        ttl=int(row[6]),
        max_value_size=int(row[7]),
        description=text(row[8]),
        created_ms=int(row[9]),
        search_state=SEARCH_STATES.get(row[10], "off") if len(row) > 10 else "off",
        search_bytes=int(row[11] or 0) if len(row) > 11 else 0,
    )


class KVStore:
    """Keys and buckets of the KV capability on the API's asyncio client."""

    translate_error = staticmethod(translate)  # a script's refusal -> the domain error (CoordKVStore adds its own)

    def __init__(self, client: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._client = client
        self._scripts = scripts
        self._settings = settings

    def _header(self, tenant_id: str, bucket: str) -> list[ScriptArg]:
        return write_header(self._settings, tenant_id, bucket)

    async def _call(
        self,
        script: LuaScript,
        tenant_id: str,
        bucket: str,
        args: Sequence[ScriptArg],
        key: str = "",
        redis_us: int | None = None,
    ) -> list[Any]:
        """Run a script on ``bucket`` (KEYS[1], which routes it to the tenant's slot); ``redis_us``: this
        call's cost inside Redis when it is not the script's usual one (LuaScript.redis_us)."""
        try:
            return await self._scripts.call(
                script, keys=[KeySchema(tenant_id).bucket(bucket)], args=args, redis_us=redis_us
            )
        except ScriptError as error:
            raise domain_error(error, lambda e: self.translate_error(e, bucket, key)) from error

    async def _after_write(self, tenant_id: str, entry: StoredEntry, schedule: Any, held_at: Any) -> None:
        """The global schedules a write may have moved: its key's expiry, the held-bytes release."""
        if int(schedule) and entry.expires_ms is not None:
            await self._schedule_expiry(tenant_id, entry.expires_ms)
        await self._schedule_held(tenant_id, held_at)

    async def _schedule_expiry(self, tenant_id: str, expires_ms: int) -> None:
        """The tenant's earliest expiry moved earlier: tell the global sweep schedule."""
        await self._client.zadd(keys.TTL_SCHEDULE, {tenant_id: expires_ms}, lt=True)

    async def _schedule_held(self, tenant_id: str, held_at: bytes | str | int) -> None:
        """A write answered the time the tenant's earliest held-bytes release moved to (a deleted key's
        history, a deleted bucket's feed): tell the global release schedule. '' = nothing moved."""
        if held_at not in (b"", ""):
            await self._client.zadd(keys.HELD_SCHEDULE, {tenant_id: int(held_at)}, lt=True)

    # -- keys ---------------------------------------------------------------------------------
    async def put(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        value_json: str,
        *,
        encoding: str | None,
        ttl: int | None,
        tags: dict[str, str] | None,
        mode: WriteMode,
        expected_version: Expected,
        if_none_match: bool,
        audit: InlineEvent | None = None,
    ) -> StoredEntry:
        """Write one key (``ttl`` None keeps the expiry, 0 removes it; ``tags`` None keeps them). With
        ``audit``, the request's audit event is recorded in the same script step when the write
        succeeds (and only then)."""
        args: list[ScriptArg] = [
            *self._header(tenant_id, bucket),
            key,
            value_json,
            encoding or "",
            "" if ttl is None else ttl * 1000,
            "" if tags is None else dumps(tags),
            mode,
            expected_arg(expected_version),
            "1" if if_none_match else "",
        ]
        if audit is not None:
            args += audit.script_args(self._settings)
        values = await self._call(KV_PUT, tenant_id, bucket, args, key)
        if audit is not None:
            audit.recorded()
        *result, schedule, tags_json, held_at = values
        entry = _written(key, value_json, encoding, [*result, tags_json])
        await self._after_write(tenant_id, entry, schedule, held_at)
        return entry

    async def get_many(
        self, tenant_id: str, bucket: str, key_list: Sequence[str]
    ) -> tuple[list[StoredEntry | None], int]:
        """Entries of ``key_list`` (None where absent or expired) and the server time (ms)."""
        # ~4 us a key inside Redis: a batch of 100 is written to Redis at once, one key waits for the turn
        values = await self._call(
            KV_GET, tenant_id, bucket, [keys.tenant_prefix(tenant_id), bucket, *key_list], redis_us=4 * len(key_list)
        )
        found = values[0]
        now = int(values[1]) if len(values) > 1 else 0  # no time when the `default` bucket does not exist yet
        return [_entry(k, f) if f else None for k, f in zip(key_list, found, strict=True)], now

    async def delete(self, tenant_id: str, bucket: str, key: str, expected_version: Expected) -> int:
        """Delete one key; returns the bucket revision of the deletion."""
        values = await self._call(
            KV_DELETE,
            tenant_id,
            bucket,
            [*self._header(tenant_id, bucket), key, expected_arg(expected_version)],
            key,
        )
        await self._schedule_held(tenant_id, values[2])
        return int(values[0])

    async def history(self, tenant_id: str, bucket: str, key: str, limit: int) -> list[HistoryRecord]:
        """Up to ``limit`` kept records of ``key``, newest first."""
        values = await self._call(
            KV_HISTORY, tenant_id, bucket, [keys.tenant_prefix(tenant_id), bucket, key, limit], key
        )
        return [_history_record(raw) for raw in values[0]]

    async def count(self, tenant_id: str, bucket: str) -> int:
        values = await self._call(KV_COUNT, tenant_id, bucket, [keys.tenant_prefix(tenant_id), bucket])
        return int(values[0])

    async def list_keys(
        self,
        tenant_id: str,
        bucket: str,
        *,
        limit: int,
        cursor: str | None,
        offset: int | None,
        prefix: str,
        tags: Sequence[tuple[str, str]],
        with_total: bool,
        with_values: bool = True,
    ) -> Page:
        """A page of live keys in key order, after ``cursor`` or at ``offset`` (``with_values`` False: the
        metadata only, each entry's ``value_json`` empty)."""
        mode, start = ("page", str(offset)) if offset is not None else ("cursor", cursor or "")
        if not with_values:
            mode += "-meta"
        values = await self._call(
            KV_LIST,
            tenant_id,
            bucket,
            [
                keys.tenant_prefix(tenant_id),
                bucket,
                mode,
                start,
                limit,
                prefix,
                "1" if with_total else "0",
                *(f"{name}={value}" for name, value in tags),
            ],
        )
        total, next_cursor, flat, now = values
        return Page(
            entries=[_entry(text(flat[i]), flat[i + 1 : i + 9]) for i in range(0, len(flat), 9)],
            total=None if int(total) < 0 else int(total),
            next_cursor=text(next_cursor) or None,
            now_ms=int(now),
        )

    # -- batches ------------------------------------------------------------------------------
    async def batch_put(self, tenant_id: str, bucket: str, items: Sequence[PutItem]) -> list[StoredEntry]:
        """Upsert every item or none; a refusal names the item (``item {index}: ...``, extra ``index``)."""
        args = self._header(tenant_id, bucket)
        for item in items:
            args += [
                item.key,
                item.value_json,
                item.encoding or "",
                "" if item.ttl is None else item.ttl * 1000,
                "" if item.tags is None else dumps(item.tags),
            ]
        try:
            schedule, results, held_at = await self._scripts.call(
                KV_BATCH_PUT, keys=[KeySchema(tenant_id).bucket(bucket)], args=args
            )
        except ScriptError as error:
            index = error.index or 0  # kv_batch_put names the item of every refusal
            key = items[index].key if index < len(items) else ""
            exc = domain_error(error, lambda e: self.translate_error(e, bucket, key))
            exc.detail = f"item {index}: {exc.detail}"
            exc.extra["index"] = index
            raise exc from error
        entries = [
            _written(item.key, item.value_json, item.encoding, result)
            for item, result in zip(items, results, strict=True)
        ]
        expiries = [e.expires_ms for e in entries if e.expires_ms is not None]
        if int(schedule) and expiries:
            await self._schedule_expiry(tenant_id, min(expiries))
        await self._schedule_held(tenant_id, held_at)
        return entries

    async def batch_delete(self, tenant_id: str, bucket: str, key_list: Sequence[str]) -> list[bool]:
        """Delete the keys that exist; per key, whether it was deleted (False: it was not there)."""
        values = await self._call(KV_BATCH_DELETE, tenant_id, bucket, [*self._header(tenant_id, bucket), *key_list])
        await self._schedule_held(tenant_id, values[1])
        return [bool(int(flag)) for flag in values[0]]

    # -- buckets ------------------------------------------------------------------------------
    async def create_bucket(
        self,
        tenant_id: str,
        name: str,
        *,
        description: str,
        history: int,
        ttl: int,
        max_value_size: int,
        search: bool = False,
    ) -> BucketInfo:
        bucket_id, created_ms = await self._call(
            KV_BUCKET_CREATE,
            tenant_id,
            name,
            [
                keys.tenant_prefix(tenant_id),
                name,
                history,
                ttl,
                max_value_size,
                description,
                self._settings.quota_max_buckets,
                "1" if search else "0",
            ],
        )
        return BucketInfo(
            name,
            int(bucket_id),
            0,
            0,
            0,
            history,
            ttl,
            max_value_size,
            description,
            int(created_ms),
            "on" if search else "off",
        )

    async def bucket_infos(self, tenant_id: str, names: Sequence[str] = ()) -> list[BucketInfo]:
        """The buckets named (those that exist), or every bucket of the tenant when none is named."""
        values = await self._scripts.call(
            KV_BUCKET_INFO, keys=[KeySchema(tenant_id).buckets()], args=[keys.tenant_prefix(tenant_id), *names]
        )
        return [_bucket_info(row) for row in values[0]]

    async def delete_bucket(self, tenant_id: str, name: str) -> None:
        """Delete a bucket; when it is too big to purge at once, the tenant goes to the worker's trash list."""
        _, purged, held_at = await self._call(
            KV_BUCKET_DELETE,
            tenant_id,
            name,
            [
                *self._header(tenant_id, name),
                self._settings.bucket_inline_delete_max_keys,
                self._settings.deleted_feed_ttl_seconds * 1000,
            ],
        )
        if not int(purged):
            await self._client.sadd(keys.TRASH_TENANTS, tenant_id)
        await self._schedule_held(tenant_id, held_at)


class SyncKVStore:
    """What the worker does to KV data, on its blocking client: the TTL sweep and the bucket purge."""

    def __init__(self, client: SyncDataRedis, scripts: SyncScripts, settings: Settings) -> None:
        self._client = client
        self._scripts = scripts
        self._settings = settings

    # -- TTL sweep ----------------------------------------------------------------------------
    def due_tenants(self, now_ms: int, limit: int) -> list[str]:
        """Up to ``limit`` tenants whose earliest expiry is at or before ``now_ms``."""
        # Members only (no WITHSCORES), which redis-py's annotation does not tell apart.
        due = cast(list[bytes], self._client.zrangebyscore(keys.TTL_SCHEDULE, "-inf", now_ms, start=0, num=limit))
        return [text(raw) for raw in due]

    def sweep_step(self, tenant_id: str, limit: int) -> SweepStep:
        """Remove up to ``limit`` expired entries of one tenant (fewer removed: nothing more is due)."""
        next_due, flat, held_at = self._scripts.call(
            TTL_SWEEP_TENANT,
            keys=[KeySchema(tenant_id).ttl_buckets()],
            args=[*write_header(self._settings, tenant_id, ""), limit],
        )
        removed = [
            ExpiredEntry(tenant_id, text(flat[i]), text(flat[i + 1]), int(flat[i + 2]), int(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]
        if held_at:
            self._client.zadd(keys.HELD_SCHEDULE, {tenant_id: int(held_at)}, lt=True)
        return SweepStep(removed, int(float(next_due)) if next_due else None)

    def reschedule(self, tenant_id: str, next_due_ms: int | None) -> None:
        """Set the tenant's score in the global schedule (or drop it), then re-read the tenant's own
        marker: a write that registered an earlier expiry meanwhile must not be overwritten."""
        if next_due_ms is None:
            self._client.zrem(keys.TTL_SCHEDULE, tenant_id)
        else:
            self._client.zadd(keys.TTL_SCHEDULE, {tenant_id: next_due_ms})
        marker = self._client.get(KeySchema(tenant_id).ttl_scheduled())
        if marker is not None and (next_due_ms is None or int(float(marker)) < next_due_ms):
            self._client.zadd(keys.TTL_SCHEDULE, {tenant_id: int(float(marker))}, lt=True)

    # -- release of held bytes (deleted keys' history, deleted buckets' feeds) -------------------
    def held_due_tenants(self, now_ms: int, limit: int) -> list[str]:
        """Up to ``limit`` tenants with a deleted key's history or a deleted bucket's feed expired by ``now_ms``."""
        due = cast(list[bytes], self._client.zrangebyscore(keys.HELD_SCHEDULE, "-inf", now_ms, start=0, num=limit))
        return [text(raw) for raw in due]

    def release_step(self, tenant_id: str, limit: int) -> tuple[int, int | None]:
        """Release up to ``limit`` expired held items of one tenant: (items released, next release ms)."""
        next_at, released = self._scripts.call(
            KV_RELEASE_HELD,
            keys=[KeySchema(tenant_id).history_buckets()],
            args=[keys.tenant_prefix(tenant_id), limit],
        )
        return int(released), int(next_at) if next_at else None

    def reschedule_held(self, tenant_id: str, next_at: int | None) -> None:
        """Set the tenant's score in the release schedule (or drop it), then re-read its marker: a
        deletion that scheduled an earlier release meanwhile must not be overwritten."""
        if next_at is None:
            self._client.zrem(keys.HELD_SCHEDULE, tenant_id)
        else:
            self._client.zadd(keys.HELD_SCHEDULE, {tenant_id: next_at})
        marker = self._client.get(KeySchema(tenant_id).held_scheduled())
        if marker is not None and (next_at is None or int(float(marker)) < next_at):
            self._client.zadd(keys.HELD_SCHEDULE, {tenant_id: int(float(marker))}, lt=True)

    # -- bucket purge -------------------------------------------------------------------------
    def trashed_tenants(self) -> list[str]:
        """Tenants with deleted buckets whose keys wait for the purge."""
        return [text(raw) for raw in self._client.smembers(keys.TRASH_TENANTS)]

    def trashed_buckets(self, tenant_id: str) -> list[str]:
        """The ids of the tenant's deleted bucket incarnations still to purge."""
        return [text(raw) for raw in self._client.lrange(KeySchema(tenant_id).trash(), 0, -1)]

    def purge_step(self, tenant_id: str, bucket_id: str, limit: int) -> int:
        """Purge up to ``limit`` items of a deleted bucket; returns how many are left (0: done, untrashed)."""
        (left,) = self._scripts.call(
            KV_BUCKET_PURGE_STEP,
            keys=[KeySchema(tenant_id).trash()],
            args=[keys.tenant_prefix(tenant_id), bucket_id, limit],
        )
        return int(left)

    def release_tenant(self, tenant_id: str) -> None:
        """The tenant's trash was purged: drop it from the purge's list, unless a bucket was deleted meanwhile."""
        self._client.srem(keys.TRASH_TENANTS, tenant_id)
        if self._client.llen(KeySchema(tenant_id).trash()):
            self._client.sadd(keys.TRASH_TENANTS, tenant_id)
