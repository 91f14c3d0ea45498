"""Storage of the coordination operations on keys: counters, touch, transactions and writes that
attach a key to a lease. Each runs one Lua script (app/kv/lua/kv_increment.lua, kv_touch.lua,
kv_txn.lua, kv_put_lease.lua) that changes keys through _kv_lib's write functions, so history,
change events and quotas work as for any write."""

from __future__ import annotations

from collections.abc import Sequence

from app.kv.coord_model import (
    Compare,
    CounterOverflow,
    LeaseAttached,
    LeaseNotFound,
    NotAnInteger,
    StalePatchBase,
    TooManyLeaseKeys,
    TxnOp,
    TxnOutcome,
)
from app.kv.model import StoredEntry
from app.kv.store import KVStore, _entry, _written, translate
from app.platform.errors import KVStoreError
from app.platform.jsonutil import dumps
from app.platform.keyspace import KeySchema
from app.platform.scripts import LuaScript, ScriptArg, ScriptError, domain_error

KV_INCREMENT = LuaScript("kv_increment")
KV_TOUCH = LuaScript("kv_touch")
KV_PUT_LEASE = LuaScript("kv_put_lease")
KV_TXN = LuaScript("kv_txn")

MAX_LEASE_KEYS = 1000
"""Keys one lease may hold at once."""


def coord_translate(error: ScriptError, bucket: str, key: str = "") -> KVStoreError:
    """The domain error of a coordination script's refusal (the KV ones through :func:`translate`)."""
    code, detail = error.code, error.detail
    if code == "not_an_integer":
        return NotAnInteger(f"key {key!r} holds {detail!r}, not a JSON integer: it cannot be incremented")
    if code == "counter_overflow":
        return CounterOverflow(
            f"key {key!r} is at {detail}: the increment would leave the signed 64-bit range [{-(2**63)}, {2**63 - 1}]"
        )
    if code == "lease_attached":
        return LeaseAttached(f"key {key!r} is attached to lease {detail!r}: it expires with it (keep the lease alive)")
    if code == "lease_not_found":
        return LeaseNotFound(f"lease {detail!r} does not exist or has expired")
    if code == "too_many_lease_keys":
        return TooManyLeaseKeys(f"lease {detail!r} already holds {MAX_LEASE_KEYS} keys, the most one lease may hold")
    return translate(error, bucket, key)


class CoordKVStore(KVStore):
    """Counters, touch, transactions and lease-attached writes on the API's asyncio client (the KV
    store's script calls and schedules, with the coordination scripts' refusals)."""

    translate_error = staticmethod(coord_translate)

    async def increment(self, tenant_id: str, bucket: str, key: str, by: int, ttl: int | None) -> StoredEntry:
        """Add ``by`` to the integer value of ``key`` (0 when absent); ``ttl`` None keeps the expiry."""
        values = await self._call(
            KV_INCREMENT,
            tenant_id,
            bucket,
            [*self._header(tenant_id, bucket), key, str(by), "" if ttl is None else ttl * 1000],
            key,
        )
        *result, schedule, tags_json, value, held_at = values
        entry = _written(key, value.decode(), None, [*result, tags_json])
        await self._after_write(tenant_id, entry, schedule, held_at)
        return entry

    async def touch(self, tenant_id: str, bucket: str, key: str, ttl: int) -> tuple[StoredEntry, int]:
        """Set (0: remove) the expiry of a live key without a new version; the entry and the server time."""
        fields, schedule, now = await self._call(
            KV_TOUCH, tenant_id, bucket, [*self._header(tenant_id, bucket), key, ttl * 1000], key
        )
        entry = _entry(key, fields)
        await self._after_write(tenant_id, entry, schedule, "")
        return entry, int(now)

    async def put_with_lease(
        self,
        tenant_id: str,
        bucket: str,
        key: str,
        value_json: str,
        *,
        encoding: str | None,
        tags: dict[str, str] | None,
        lease: str,
        mode: str,
        expected: str,
        if_none_match: bool,
    ) -> StoredEntry:
        """Write ``key`` attached to ``lease``: it expires with the lease (its expiry is the lease's)."""
        values = await self._call(
            KV_PUT_LEASE,
            tenant_id,
            bucket,
            [
                *self._header(tenant_id, bucket),
                key,
                value_json,
                encoding or "",
                "" if tags is None else dumps(tags),
                mode,
                expected,
                "1" if if_none_match else "",
                lease,
                MAX_LEASE_KEYS,
            ],
            key,
        )
        *result, schedule, tags_json, held_at = values
        entry = _written(key, value_json, encoding, [*result, tags_json])
        await self._after_write(tenant_id, entry, schedule, held_at)
        return entry

    async def txn(
        self, tenant_id: str, compares: Sequence[Compare], success: Sequence[TxnOp], failure: Sequence[TxnOp]
    ) -> TxnOutcome:
        """Run a transaction in one script (kv_txn.lua). :class:`StalePatchBase` when a patched key
        moved since its merge; a refusal names its operation (``operation {index}: ...``, extra ``index``)."""
        args: list[ScriptArg] = [
            *self._header(tenant_id, ""),
            len(compares),
            len(success),
            len(failure),
            MAX_LEASE_KEYS,
        ]
        for c in compares:
            args += [c.bucket, c.key, c.target, c.op, c.operand]
        for op in (*success, *failure):
            args += [
                op.op,
                op.bucket,
                op.key,
                op.value_json,
                op.encoding or "",
                "" if op.ttl is None else op.ttl * 1000,
                "" if op.tags is None else dumps(op.tags),
                "" if op.base_version is None else op.base_version,
                op.lease or "",
            ]
        try:
            succeeded, results, earliest, held_at = await self._scripts.call(
                KV_TXN, keys=[KeySchema(tenant_id).buckets()], args=args
            )
        except ScriptError as error:
            if error.code == "stale":
                raise StalePatchBase(error.index or 0) from error
            every = (*success, *failure)
            where = error.index
            failed = every[where] if where is not None and where < len(every) else None
            bucket, key = (failed.bucket, failed.key) if failed else ("", "")
            exc = domain_error(error, lambda e: coord_translate(e, bucket, key))
            if where is not None and failed is not None:
                branch, index = ("success", where) if where < len(success) else ("failure", where - len(success))
                exc.detail = f"{branch}[{index}]: {exc.detail}"
                exc.extra["branch"] = branch
                exc.extra["index"] = index
            raise exc from error
        ops = list(success if int(succeeded) else failure)
        entries: list[StoredEntry | None] = []
        deleted: list[bool | None] = []
        now = 0
        for op, result in zip(ops, results, strict=True):
            if op.op in ("put", "patch"):
                entry = _written(op.key, op.value_json, op.encoding, result[1:])
                entries.append(entry)
                deleted.append(None)
                now = max(now, entry.updated_ms)
            elif op.op == "delete":
                entries.append(None)
                deleted.append(bool(int(result[1])))
            else:
                entries.append(_entry(op.key, result[1]) if result[1] else None)
                deleted.append(None)
        if earliest:
            await self._schedule_expiry(tenant_id, int(earliest))
        await self._schedule_held(tenant_id, held_at)
        return TxnOutcome(bool(int(succeeded)), ops, entries, deleted, now)
