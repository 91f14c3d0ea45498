"""Transactions: the rules around kv_txn.lua (app/kv/coord_store.py runs it).

A transaction's compares and the operations of the branch they choose run as one Lua script, so
they are atomic across the tenant's buckets. A merge patch needs the current value: the service
reads the patched keys, merges, and sends the merged values with the version they were merged
from; the script refuses the branch (``stale``, nothing written) when one of them moved, and the
service merges again (up to ``merge_patch_max_retries`` times)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from app.kv.coord_model import Compare, StalePatchBase, TxnOp, TxnOperationInvalid, TxnOutcome
from app.kv.coord_store import CoordKVStore
from app.kv.model import StoredEntry
from app.kv.rules import check_json_depth, json_text, merge_patch
from app.platform.errors import Conflict, InvalidInput, KVStoreError, PayloadTooLarge


class KVService(Protocol):
    """What a transaction needs of app.kv.service.KVService (which imports this module)."""

    @property
    def max_json_depth(self) -> int: ...
    @property
    def merge_patch_max_retries(self) -> int: ...
    @property
    def coord_store(self) -> CoordKVStore: ...
    def check_key(self, key: str) -> None: ...
    def check_bucket(self, name: str) -> None: ...
    def check_value(self, value_json: str | bytes, index: int | None = None) -> None: ...
    def check_tags(self, tags: dict[str, str] | None) -> None: ...
    async def get_many(
        self, tenant_id: str, bucket: str, key_list: Sequence[str]
    ) -> tuple[list[StoredEntry | None], int]: ...


MAX_TXN_COMPARES = 64
"""The most compares one transaction may hold."""
MAX_TXN_OPS = 64
"""The most operations one branch (success or failure) of a transaction may hold."""


def _invalid(where: str, index: int, exc: KVStoreError) -> TxnOperationInvalid:
    return TxnOperationInvalid(
        f"{where}[{index}]: {exc.detail}",
        branch=where,
        index=index,
        errors=[{"field": f"body.{where}.{index}", "message": exc.detail, "type": "value_error"}],
    )


def check_txn(kv: KVService, compares: Sequence[Compare], success: Sequence[TxnOp], failure: Sequence[TxnOp]) -> None:
    """The rules of every compare and operation (names, sizes, tags; no key written twice in a branch)."""
    if len(compares) > MAX_TXN_COMPARES:
        raise PayloadTooLarge(f"a transaction holds at most {MAX_TXN_COMPARES} compares", limit=MAX_TXN_COMPARES)
    for ops in (success, failure):
        if len(ops) > MAX_TXN_OPS:
            raise PayloadTooLarge(f"a transaction branch holds at most {MAX_TXN_OPS} operations", limit=MAX_TXN_OPS)
    for index, compare in enumerate(compares):
        try:
            kv.check_bucket(compare.bucket)
            kv.check_key(compare.key)
        except InvalidInput as exc:
            raise _invalid("compare", index, exc) from exc
    for where, ops in (("success", success), ("failure", failure)):
        written: set[tuple[str, str]] = set()
        for index, op in enumerate(ops):
            try:
                kv.check_bucket(op.bucket)
                kv.check_key(op.key)
                if op.op == "put":
                    kv.check_tags(op.tags)
                if op.op in ("put", "delete", "patch"):
                    if (op.bucket, op.key) in written:
                        raise InvalidInput(f"key {op.key!r} of bucket {op.bucket!r} is written twice in one branch")
                    written.add((op.bucket, op.key))
                if op.op == "patch":
                    check_json_depth(op.patch, kv.max_json_depth)
            except ValueError as exc:
                raise _invalid(where, index, InvalidInput(str(exc))) from exc
            except InvalidInput as exc:
                raise _invalid(where, index, exc) from exc
            if op.op == "put":
                try:
                    kv.check_value(op.value_json)
                except PayloadTooLarge as exc:
                    exc.detail = f"{where}[{index}]: {exc.detail}"
                    raise


async def merge_patches(kv: KVService, tenant_id: str, ops: Sequence[TxnOp]) -> None:
    """Give each patch operation its merged value and the version it was merged from (0: absent)."""
    for op in ops:
        if op.op != "patch":
            continue
        (current,), _ = await kv.get_many(tenant_id, op.bucket, [op.key])
        if current is None:
            op.base_version, op.value_json = 0, "null"
            continue
        if current.encoding:
            raise TxnOperationInvalid(f"patch of key {op.key!r}: a base64 (binary) value cannot be merge-patched")
        try:
            op.value_json = json_text(merge_patch(json.loads(current.value_json), op.patch))
        except ValueError as exc:
            raise TxnOperationInvalid(f"patch of key {op.key!r}: the merged value: {exc}") from exc
        kv.check_value(op.value_json)
        op.base_version = current.version


async def run_txn(
    kv: KVService, tenant_id: str, compares: Sequence[Compare], success: Sequence[TxnOp], failure: Sequence[TxnOp]
) -> TxnOutcome:
    """Check, merge the patches, run; merge again while a patched key moves under it."""
    check_txn(kv, compares, success, failure)
    patches = [op for op in (*success, *failure) if op.op == "patch"]
    for _ in range(max(1, kv.merge_patch_max_retries)):
        await merge_patches(kv, tenant_id, patches)
        try:
            return await kv.coord_store.txn(tenant_id, compares, success, failure)
        except StalePatchBase:
            if not patches:
                raise
    raise Conflict("a patched key changed under every attempt of the transaction; retry")
