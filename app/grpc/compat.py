"""``kvstore.KvStore``: the Go gRPC KV store's service (proto/kvstore.proto), on the bucket
`default` of the caller's tenant, through the same KVService and WatchService as everything else.

- Put stores the string as a JSON string (HTTP reads it back as ``"value": "<string>"``); success true.
- Get answers the string; a value written as other JSON through HTTP comes back as its JSON text, a
  binary one as its base64 text. A missing key is NOT_FOUND (key_not_found).
- Delete: success false when the key did not exist (no error).
- GetAll: every live key of the bucket, up to GETALL_MAX_KEYS keys and GETALL_MAX_BYTES of keys and
  values (RESOURCE_EXHAUSTED response_too_large beyond: page with kvstore.v1.KV/List instead).
- Watch(key): live changes of the key, each one JSON object in ``message``:
  ``{"type": "put"|"delete"|"expire"|"purge", "key", "value" (put), "revision", "version"}``.
"""

from __future__ import annotations

import json
from typing import Any

from app.auth.deps import WATCH_SCOPE
from app.grpc.calls import Call, stream, unary
from app.grpc.errors import ResponseTooLarge, StreamEnded
from app.grpc.gen import kvstore_pb2 as pb
from app.grpc.gen import kvstore_pb2_grpc as pb_grpc
from app.grpc.kv_api import run_watch
from app.grpc.values import text_value
from app.kv.rules import json_text
from app.kv.service import DEFAULT_BUCKET, KVService
from app.platform.errors import InvalidInput, KeyNotFound
from app.watch.service import WatchMessage, WatchService, WatchSession

GETALL_MAX_KEYS = 10_000
GETALL_MAX_BYTES = 4 * 1024 * 1024 - 64 * 1024  # below a gRPC client's default 4 MiB receive limit
CHANGES = frozenset({"put", "delete", "expire", "purge"})


class KvStoreServicer(pb_grpc.KvStoreServicer):
    SERVICE = "kvstore.KvStore"

    def __init__(self, state: Any) -> None:
        self.state = state
        self.kv: KVService = state.kv_service
        self.watch: WatchService = state.watch

    @unary(audit="kv.put_key")
    async def Put(self, request: pb.PutRequest, call: Call) -> pb.PutResponse:  # noqa: N802 - the RPC's name
        claims = await call.authorize("kv:write", DEFAULT_BUCKET, request.key)
        try:
            value_json = json_text(request.value)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        entry = await self.kv.put(claims.tenant_id, DEFAULT_BUCKET, request.key, value_json)
        call.http_status = 201 if entry.created else 200
        return pb.PutResponse(success=True)

    @unary()
    async def Get(self, request: pb.GetRequest, call: Call) -> pb.GetResponse:  # noqa: N802
        claims = await call.authorize("kv:read", DEFAULT_BUCKET, request.key)
        entry, _ = await self.kv.get(claims.tenant_id, DEFAULT_BUCKET, request.key)
        return pb.GetResponse(key=entry.key, value=text_value(entry.value_json))

    @unary(audit="kv.delete_key")
    async def Delete(self, request: pb.DeleteRequest, call: Call) -> pb.DeleteResponse:  # noqa: N802
        claims = await call.authorize("kv:write", DEFAULT_BUCKET, request.key)
        try:
            await self.kv.delete(claims.tenant_id, DEFAULT_BUCKET, request.key)
        except KeyNotFound:
            call.http_status = 404
            return pb.DeleteResponse(success=False)
        return pb.DeleteResponse(success=True)

    @unary()
    async def GetAll(self, request: pb.GetAllRequest, call: Call) -> pb.GetAllResponse:  # noqa: N802
        claims = await call.authorize("kv:read", DEFAULT_BUCKET)
        prefix = call.list_prefix("")
        response = pb.GetAllResponse()
        size, count, cursor = 0, 0, None
        while True:
            page = await self.kv.list_keys(
                claims.tenant_id,
                DEFAULT_BUCKET,
                limit=self.state.settings.max_page_size,
                cursor=cursor,
                prefix=prefix,
                with_total=False,
            )
            for entry in page.entries:
                value = text_value(entry.value_json)
                count += 1
                size += len(entry.key) + len(value.encode()) + 8
                if count > GETALL_MAX_KEYS or size > GETALL_MAX_BYTES:
                    raise ResponseTooLarge(
                        f"the bucket holds more than GetAll answers ({GETALL_MAX_KEYS} keys, "
                        f"{GETALL_MAX_BYTES} bytes): page with kvstore.v1.KV/List",
                        limit=GETALL_MAX_KEYS,
                    )
                response.pairs[entry.key] = value
            if not page.next_cursor:
                return response
            cursor = page.next_cursor

    @stream
    async def Watch(self, request: pb.WatchRequest, call: Call) -> None:  # noqa: N802
        claims = await call.authorize(WATCH_SCOPE, DEFAULT_BUCKET, request.key)
        session = await self.watch.open(
            claims.tenant_id,
            DEFAULT_BUCKET,
            expires_at=claims.expires_at,
            credential=claims.credential,
            key=request.key,
        )
        await run_watch(session, call, change_message, self.state.settings.watch_slow_client_grace_seconds)


def change_message(message: WatchMessage, session: WatchSession) -> pb.WatchResponse | None:
    """A change of the watched key as the Go store's WatchResponse (None: nothing to send)."""
    if message.event == "error":
        data = json.loads(message.data)
        raise StreamEnded(data["code"], data["detail"], data["resume_from"])
    if message.event not in CHANGES:
        return None
    data = json.loads(message.data)
    change: dict[str, Any] = {"type": message.event, "key": data.get("key", "")}
    if message.event == "put":
        value = data.get("value")
        change["value"] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    change.update(revision=message.id, version=data.get("version"))
    return pb.WatchResponse(message=json.dumps(change, separators=(",", ":"), ensure_ascii=False))
