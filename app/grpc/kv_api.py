"""``kvstore.v1.KV``: the typed gRPC API over the same KVService and WatchService as the HTTP API."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing, suppress
from typing import Any

from app.auth.deps import WATCH_SCOPE
from app.grpc.calls import Call, stream, unary
from app.grpc.errors import StreamEnded
from app.grpc.gen import kvstore_v1_pb2 as pb
from app.grpc.gen import kvstore_v1_pb2_grpc as pb_grpc
from app.grpc.values import bucket_of, entry_message, event_entry, put_item
from app.kv.coord_model import Compare, TxnOp
from app.kv.model import AtRevision, Expected
from app.kv.routes import tag_filter_pair
from app.kv.service import KVService
from app.kv.txn import run_txn
from app.platform.context import audit_note, audit_skip
from app.platform.errors import InvalidInput, KeyNotFound, PreconditionFailed
from app.platform.metrics import track_watch_connection
from app.platform.stream_ids import MAX_PART
from app.watch.service import WatchMessage, WatchService, WatchSession

TXN_AUDIT_ACTIONS = {"put": "kv.put_key", "delete": "kv.delete_key"}
MAX_CURSOR = 1024  # as the HTTP API's cursor query parameter
CHANGE_TYPES = {
    "put": pb.WatchEvent.PUT,
    "delete": pb.WatchEvent.DELETE,
    "expire": pb.WatchEvent.EXPIRE,
    "purge": pb.WatchEvent.PURGE,
}


def expected_of(request: Any) -> Expected:
    """The compare-and-swap precondition of a Put or Delete: a version, else a revision, else none."""
    if request.HasField("expected_version"):
        if request.expected_version < 0:
            raise InvalidInput("expected_version must be 0 or more")
        return int(request.expected_version)
    if request.HasField("expected_revision"):
        if request.expected_revision < 0:
            raise InvalidInput("expected_revision must be 0 or more")
        return AtRevision(int(request.expected_revision))
    return None


def optional(message: Any, field: str) -> Any:
    return getattr(message, field) if message.HasField(field) else None


def tags_of(message: Any) -> dict[str, str] | None:
    return dict(message.tags.values) if message.HasField("tags") else None


class KVServicer(pb_grpc.KVServicer):
    SERVICE = "kvstore.v1.KV"

    def __init__(self, state: Any) -> None:
        self.state = state
        self.kv: KVService = state.kv_service
        self.watch: WatchService = state.watch

    @unary(audit="kv.put_key")
    async def Put(self, request: pb.PutRequest, call: Call) -> pb.PutResponse:  # noqa: N802 - the RPC's name
        bucket = bucket_of(request.bucket)
        claims = await call.authorize("kv:write", bucket, request.key)
        self.kv.check_bucket(bucket)
        item = put_item(
            request.key,
            request.value,
            request.encoding,
            optional(request, "ttl_seconds"),
            tags_of(request),
            self.kv.max_json_depth,
        )
        try:
            entry = await self.kv.put(
                claims.tenant_id,
                bucket,
                item.key,
                item.value_json,
                encoding=item.encoding,
                ttl=item.ttl,
                tags=item.tags,
                mode="update" if request.must_exist else "put",
                expected_version=expected_of(request),
                if_none_match=request.create_only,
            )
        except KeyNotFound as exc:  # must_exist, and the key does not
            raise PreconditionFailed(f"key {request.key!r} does not exist (must_exist)") from exc
        call.http_status = 201 if entry.created else 200
        return pb.PutResponse(entry=entry_message(entry, entry.updated_ms), created=entry.created)

    @unary()
    async def Get(self, request: pb.GetRequest, call: Call) -> pb.GetResponse:  # noqa: N802
        bucket = bucket_of(request.bucket)
        claims = await call.authorize("kv:read", bucket, request.key)
        self.kv.check_bucket(bucket)
        revision = optional(request, "revision")
        if revision is not None and revision < 1:
            raise InvalidInput("revision must be 1 or more")
        entry, now = await self.kv.get(claims.tenant_id, bucket, request.key, revision)
        return pb.GetResponse(entry=entry_message(entry, now))

    @unary(audit="kv.delete_key")
    async def Delete(self, request: pb.DeleteRequest, call: Call) -> pb.DeleteResponse:  # noqa: N802
        bucket = bucket_of(request.bucket)
        claims = await call.authorize("kv:write", bucket, request.key)
        self.kv.check_bucket(bucket)
        revision = await self.kv.delete(claims.tenant_id, bucket, request.key, expected_of(request))
        return pb.DeleteResponse(revision=revision)

    @unary()
    async def List(self, request: pb.ListRequest, call: Call) -> pb.ListResponse:  # noqa: N802
        bucket = bucket_of(request.bucket)
        claims = await call.authorize("kv:read", bucket)
        self.kv.check_bucket(bucket)
        max_size = self.state.settings.max_page_size
        if request.limit < 0 or request.limit > max_size:
            raise InvalidInput(f"limit is 1 to {max_size} (0: 100)")
        if len(request.cursor) > MAX_CURSOR or len(request.prefix) > 256:
            raise InvalidInput("cursor is at most 1024 characters, prefix at most 256")
        tags = [tag_filter_pair(tag.name, tag.value, f"{tag.name}:{tag.value}") for tag in request.tags]
        page = await self.kv.list_keys(
            claims.tenant_id,
            bucket,
            limit=request.limit or 100,
            cursor=request.cursor or None,
            prefix=call.list_prefix(request.prefix),
            tags=tags,
            with_total=not tags,
        )
        response = pb.ListResponse(
            entries=[entry_message(entry, page.now_ms) for entry in page.entries], next_cursor=page.next_cursor or ""
        )
        if page.total is not None:
            response.total = page.total
        return response

    @unary(audit="kv.batch")
    async def Batch(self, request: pb.BatchRequest, call: Call) -> pb.BatchResponse:  # noqa: N802
        bucket = bucket_of(request.bucket)
        operation = request.WhichOneof("operation")
        if operation is None:
            audit_skip()
            raise InvalidInput("a batch names one operation: put, get or delete")
        claims = await call.authorize("kv:read" if operation == "get" else "kv:write", bucket)
        self.kv.check_bucket(bucket)
        tenant = claims.tenant_id
        if operation == "put":
            audit_note(action="kv.batch_put")
            items = []
            for index, raw in enumerate(request.put.items):
                item = put_item(
                    raw.key,
                    raw.value,
                    raw.encoding,
                    optional(raw, "ttl_seconds"),
                    tags_of(raw),
                    self.kv.max_json_depth,
                    where=f"item {index}: ",
                )
                call.check_key(item.key)
                items.append(item)
            if not items:
                raise InvalidInput("a batch put holds at least one item")
            entries = await self.kv.batch_put(tenant, bucket, items)
            now = max(entry.updated_ms for entry in entries)
            return pb.BatchResponse(entries=[entry_message(entry, now) for entry in entries])
        keys = list(request.get.keys if operation == "get" else request.delete.keys)
        if not keys:
            raise InvalidInput("a batch holds at least one key")
        for key in keys:
            call.check_key(key)
        if operation == "get":
            audit_skip()  # a read
            found, missing, now = await self.kv.batch_get(tenant, bucket, keys)
            return pb.BatchResponse(entries=[entry_message(entry, now) for entry in found], missing=missing)
        audit_note(action="kv.batch_delete")
        deleted, missing = await self.kv.batch_delete(tenant, bucket, keys)
        return pb.BatchResponse(deleted=deleted, missing=missing)

    @unary()
    async def Txn(self, request: pb.TxnRequest, call: Call) -> pb.TxnResponse:  # noqa: N802
        """POST /kv/txn's service (app/kv/txn.py) within one bucket: compares on version, revision or
        existence (equality), then the chosen branch's puts, deletes and gets, one atomic step."""
        bucket = bucket_of(request.bucket)
        claims = await call.authorize("kv:write", bucket)
        self.kv.check_bucket(bucket)
        compares = []
        for index, raw in enumerate(request.compare):
            call.check_key(raw.key)
            target = raw.WhichOneof("target")
            if target is None:
                raise InvalidInput(f"compare[{index}]: set version, revision or exists", branch="compare", index=index)
            operand = ("1" if raw.exists else "0") if target == "exists" else str(getattr(raw, target))
            compares.append(Compare(bucket, raw.key, target, "=", operand))
        success = self._txn_ops(request.success, "success", bucket, call)
        failure = self._txn_ops(request.failure, "failure", bucket, call)
        outcome = await run_txn(self.kv, claims.tenant_id, compares, success, failure)
        for op, entry, deleted in zip(outcome.ops, outcome.entries, outcome.deleted, strict=True):
            if op.op == "get" or (op.op == "delete" and not deleted):
                continue
            status = 201 if entry is not None and entry.created else 200
            self.state.audit.record_change(TXN_AUDIT_ACTIONS[op.op], status, bucket, op.key)
        found = [entry for entry in outcome.entries if entry is not None]
        now = outcome.now_ms or max((entry.updated_ms for entry in found), default=0)
        return pb.TxnResponse(
            succeeded=outcome.succeeded,
            entries=[entry_message(entry, now) for entry in found],
            revision=max((entry.revision for entry in found), default=0),
        )

    def _txn_ops(self, items: Any, where: str, bucket: str, call: Call) -> list[TxnOp]:
        ops = []
        for index, raw in enumerate(items):
            kind = raw.WhichOneof("request")
            if kind == "put":
                item = put_item(
                    raw.put.key,
                    raw.put.value,
                    raw.put.encoding,
                    optional(raw.put, "ttl_seconds"),
                    tags_of(raw.put),
                    self.kv.max_json_depth,
                    where=f"{where}[{index}]: ",
                )
                call.check_key(item.key)
                ops.append(TxnOp("put", bucket, item.key, item.value_json, item.encoding, item.ttl, item.tags))
            elif kind == "delete" or kind == "get":
                key = raw.delete if kind == "delete" else raw.get
                call.check_key(key)
                ops.append(TxnOp(kind, bucket, key))
            else:
                raise InvalidInput(f"{where}[{index}]: set put, delete or get", branch=where, index=index)
        return ops

    @stream
    async def Watch(self, request: pb.WatchRequest, call: Call) -> None:  # noqa: N802
        bucket = bucket_of(request.bucket)
        key = optional(request, "key")
        claims = await call.authorize(WATCH_SCOPE, bucket, key)
        since = optional(request, "start_revision")
        if since is not None and not 0 <= since <= MAX_PART:
            raise InvalidInput(f"start_revision is 0 to {MAX_PART}")
        prefix = request.prefix or None
        if claims.key_prefix:  # an API key with a key prefix watches only its keys
            prefix = call.list_prefix(prefix or "")
        session = await self.watch.open(
            claims.tenant_id,
            bucket,
            expires_at=claims.expires_at,
            credential=claims.credential,
            key=key,
            prefix=prefix,
            since=since,
            snapshot=request.snapshot and since is None,  # a resumed stream gets only the changes it missed
            include_values=not request.exclude_values,
        )
        await run_watch(session, call, watch_event, self.state.settings.watch_slow_client_grace_seconds)


def watch_event(message: WatchMessage, session: WatchSession) -> pb.WatchEvent | None:
    """The WatchEvent of a session message (None: nothing to send)."""
    if message.event == "heartbeat":
        return pb.WatchEvent(type=pb.WatchEvent.PROGRESS, revision=session.position)
    if message.event == "open":
        return None
    data = json.loads(message.data)
    if message.event == "error":
        raise StreamEnded(data["code"], data["detail"], data["resume_from"])
    if message.event == "ready":
        return pb.WatchEvent(
            type=pb.WatchEvent.READY, revision=data["revision"], reason=data["reason"], entries=data["entries"]
        )
    if message.event == "snapshot":
        return pb.WatchEvent(type=pb.WatchEvent.SNAPSHOT, revision=data["revision"], entry=event_entry(data))
    return pb.WatchEvent(type=CHANGE_TYPES[message.event], revision=message.id or 0, entry=event_entry(data))


async def run_watch(session: WatchSession, call: Call, render: Any, grace_seconds: float) -> None:
    """Send the session's messages until it ends; a client that stops reading after its queue
    overflowed is cut off ``grace_seconds`` later (UNAVAILABLE slow_consumer). The session's queue,
    reader and lease are released in any case."""

    delivered = session.position  # the revision the client can resume after without a gap

    async def pump() -> None:
        nonlocal delivered
        async with aclosing(session.messages()) as messages:
            async for message in messages:
                event = render(message, session)
                if event is not None:
                    await call.context.write(event)
                # The session's position moves when it yields a message: sent (or skipped) now.
                delivered = session.position

    async def stalled() -> None:
        await session.cut_off.wait()
        await asyncio.sleep(grace_seconds)

    with track_watch_connection("grpc"):
        sender = asyncio.ensure_future(pump())
        watchdog = asyncio.ensure_future(stalled())
        try:
            done, _ = await asyncio.wait({sender, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                sender.result()
            else:
                # Not session.position: the message being written when the client stalled never arrived.
                raise StreamEnded("slow_consumer", "the client fell too far behind; resume from resume_from", delivered)
        finally:
            for task in (sender, watchdog):
                task.cancel()
            for task in (sender, watchdog):
                with suppress(asyncio.CancelledError, Exception):
                    await task
            await asyncio.shield(session.close())
