"""Watch a bucket's changes: Server-Sent Events (``GET /kv/buckets/{bucket}/watch``, ``GET /kv/watch``
for the default bucket) and WebSocket (``WS /kv/watch/{bucket}``), the same events on both.

Everything that can fail (token, parameters, unknown bucket, the tenant's stream limit) fails before
the stream starts: a problem+json response, or on the WebSocket an ``error`` message and a close code
4000 + the HTTP status (4401, 4404, 4422, 4429, 4503; 4500 for a bug) right after the handshake.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing, suppress
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request, WebSocket
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from app.auth.deps import StreamClaimsDependency, authenticate_stream, bearer_token, narrow_prefix, require_key
from app.kv.service import DEFAULT_BUCKET
from app.platform.errors import STORAGE_UNAVAILABLE_DETAIL, InvalidInput, KVStoreError
from app.platform.http.problems import validation_errors
from app.platform.http.schemas import PROBLEM_RESPONSES
from app.platform.metrics import track_watch_connection
from app.platform.redis import REDIS_ERRORS
from app.platform.security import AccessClaims
from app.platform.stream_ids import parse_part
from app.watch.events import json_data, socket_message, sse_comment, sse_frame
from app.watch.schemas import REVISION_RULE, TenantStreamParams, WatchParams
from app.watch.service import COMMENTS, WatchMessage, WatchService, WatchSession
from app.watch.tenant import StreamMessage, TenantStream, open_tenant_stream, parse_cursor

logger = logging.getLogger("kvstore.watch")

router = APIRouter(tags=["watch"])

# WebSocket close codes of a stream that ended (refusals before the stream use 4000 + HTTP status).
CLOSE_CODES = {
    None: 1000,
    "purge": 1000,  # the bucket was deleted
    "bucket_not_found": 1000,
    "shutting_down": 1012,  # service restart: reconnect (to another replica) and resume
    "slow_consumer": 1013,  # try again later: resume from resume_from
    "unavailable": 1013,
    "token_expired": 4401,
    "session_ended": 4401,  # logout, logout-all, a password change or a replayed refresh token
    "quota_exceeded": 4429,  # its lease lapsed (Redis stalled) and the tenant's slots were taken meanwhile
}
TRANSPORT_ERRORS = (OSError, WebSocketDisconnect, anyio.BrokenResourceError, anyio.ClosedResourceError)


async def get_watch_service(request: Request) -> WatchService:
    service: WatchService = request.app.state.watch
    return service


WatchServiceDep = Annotated[WatchService, Depends(get_watch_service)]
WatchQuery = Annotated[WatchParams, Query()]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", description="Resume after this revision (sent by EventSource on reconnect)"),
]

SSE_DOC = """Server-Sent Events. Each change: `id: <revision>`, `event: put|delete|expire|purge`,
`data: {key, revision, version, value, encoding?, tags, ttl, expires_at, updated_at}`. With
`snapshot=true` (or when the revision to resume from is no longer kept) first `event: snapshot` per
current entry, then `event: ready` with `{revision, entries, reason}`. A comment heartbeat keeps idle
streams open. The stream ends with `event: error` `{code, detail, resume_from}` (token_expired,
slow_consumer, shutting_down, unavailable, quota_exceeded) or after `purge` (the bucket was deleted)."""

SSE_RESPONSES = {
    200: {"description": "An event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    **PROBLEM_RESPONSES(401, 404, 422, 429),
}


def resume_revision(last_event_id: str | None, since: int | None) -> int | None:
    """Last-Event-ID (an EventSource reconnecting) wins over ``since`` (the URL it was opened with).
    It must be a revision as Redis reads one (ASCII digits, at most 2^64-1), else a 422."""
    if last_event_id is None or not last_event_id.strip(" \t"):
        return since
    revision = parse_part(last_event_id.strip(" \t"))
    if revision is None:
        raise InvalidInput(
            f"Last-Event-ID must be a revision: {REVISION_RULE}",
            errors=[{"field": "header.Last-Event-ID", "message": REVISION_RULE, "type": "int_parsing"}],
        )
    return revision


async def open_session(
    watch: WatchService, claims: AccessClaims, bucket: str, params: WatchParams, last_event_id: str | None
) -> WatchSession:
    since = resume_revision(last_event_id, params.since)
    prefix = params.prefix
    if claims.key_prefix:  # an API key with a key prefix watches only its keys
        if params.key is not None:
            require_key(claims, params.key)
        prefix = narrow_prefix(claims, prefix or "")
    return await watch.open(
        claims.tenant_id,
        bucket,
        expires_at=claims.expires_at,
        credential=claims.credential,
        key=params.key,
        prefix=prefix,
        since=since,
        snapshot=params.snapshot and since is None,  # a resumed stream gets only the changes it missed
        include_values=params.include_values,
    )


async def run_session(
    session: WatchSession | TenantStream,
    emit: Callable[[Any], Awaitable[None]],
    client_gone: Callable[[], Awaitable[None]],
    transport: str,
    grace_seconds: float,
) -> bool:
    """Send the session's messages until it ends (True), or the client leaves or stops reading after
    falling behind (False). The session's queue, reader and lease are released either way, at once."""
    ended = False
    with track_watch_connection(transport):
        try:
            async with anyio.create_task_group() as group:

                async def stop_after(waiter: Callable[[], Awaitable[None]]) -> None:
                    await waiter()
                    group.cancel_scope.cancel()

                async def stalled() -> None:
                    # Cut off while blocked on a client that does not read: give it a moment to take
                    # what was sent (and the error event saying where to resume), then drop it.
                    await session.cut_off.wait()
                    await anyio.sleep(grace_seconds)

                group.start_soon(stop_after, client_gone)
                group.start_soon(stop_after, stalled)
                try:
                    async with aclosing(session.messages()) as messages:
                        async for message in messages:
                            await emit(message)
                    ended = True
                except TRANSPORT_ERRORS:
                    pass  # the client went away mid-send
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await session.close()
    return ended


def render_sse(message: WatchMessage | StreamMessage) -> bytes:
    if message.event == "heartbeat":
        return sse_comment("heartbeat", message.id)
    if message.event == "open":
        return sse_comment(message.data.decode())
    return sse_frame(message.event, message.data, message.id)


class EventStreamResponse(Response):
    """text/event-stream of one watch session; ends when the session ends or the client leaves."""

    media_type = "text/event-stream"

    def __init__(self, session: WatchSession | TenantStream, grace_seconds: float) -> None:
        self.session = session
        self.grace_seconds = grace_seconds
        self.status_code = 200
        self.background = None
        # no-cache and X-Accel-Buffering: proxies (nginx) must pass every event on at once.
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

        async def emit(message: WatchMessage | StreamMessage) -> None:
            await send({"type": "http.response.body", "body": render_sse(message), "more_body": True})

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        if await run_session(self.session, emit, client_gone, "sse", self.grace_seconds):
            with suppress(*TRANSPORT_ERRORS):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _sse(
    request: Request, watch: WatchService, claims: AccessClaims, bucket: str, params: WatchParams, last_id: str | None
) -> EventStreamResponse:
    session = await open_session(watch, claims, bucket, params, last_id)
    return EventStreamResponse(session, request.app.state.settings.watch_slow_client_grace_seconds)


@router.get(
    "/kv/buckets/{bucket}/watch",
    response_class=EventStreamResponse,
    status_code=200,  # EventStreamResponse.__init__ has no status_code for FastAPI to read it from
    responses=SSE_RESPONSES,
    summary="Watch a bucket's changes (Server-Sent Events)",
    operation_id="watch_bucket",
    description=SSE_DOC,
)
async def watch_bucket(
    request: Request,
    bucket: Annotated[str, Path(max_length=256)],
    params: WatchQuery,
    claims: Annotated[AccessClaims, Depends(StreamClaimsDependency())],
    watch: WatchServiceDep,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    return await _sse(request, watch, claims, bucket, params, last_event_id)


@router.get(
    "/kv/watch",
    response_class=EventStreamResponse,
    status_code=200,  # EventStreamResponse.__init__ has no status_code for FastAPI to read it from
    responses=SSE_RESPONSES,
    summary="Watch the default bucket's changes (Server-Sent Events)",
    operation_id="watch_default_bucket",
    description=SSE_DOC,
)
async def watch_default_bucket(
    request: Request,
    params: WatchQuery,
    claims: Annotated[AccessClaims, Depends(StreamClaimsDependency(DEFAULT_BUCKET))],
    watch: WatchServiceDep,
    last_event_id: LastEventId = None,
) -> EventStreamResponse:
    return await _sse(request, watch, claims, DEFAULT_BUCKET, params, last_event_id)


TENANT_STREAM_DOC = """Server-Sent Events of every KV bucket of the tenant (an API key limited to buckets: of
those; to a key prefix: of its keys), including buckets created while the stream is open.
Each change: `id: <cursor>`, `event: delta`, `data: {bucket, op, key, revision, version, value,
encoding?, tags, ttl, expires_at, updated_at}` with `op` put|delete|expire|purge (purge: the bucket
was deleted). With `snapshot=true` first `event: snapshot` `{bucket, key, ...}` per live entry of
every bucket, then `event: ready` `{buckets: {name: revision}, entries, reason}`. The id is a cursor
holding a position per bucket (`v1,<bucket>:<bucket id>:<revision>,...`): reconnect with it
(`Last-Event-ID`, or `since=`) and every bucket resumes where it was. A comment heartbeat keeps idle
streams open; the stream ends with `event: error` `{code, detail, resume_from}` like a watch. It
counts as one watch stream against the tenant's `max_watch_streams`."""


def resume_cursor(last_event_id: str | None, since: str | None) -> dict[str, tuple[str, int]] | None:
    """Last-Event-ID (an EventSource reconnecting) wins over ``since``, as for a watch."""
    if last_event_id is not None and last_event_id.strip(" \t"):
        return parse_cursor(last_event_id, "header.Last-Event-ID")
    return None if since is None else parse_cursor(since, "query.since")


@router.get(
    "/events/stream",
    response_class=EventStreamResponse,
    status_code=200,  # EventStreamResponse.__init__ has no status_code for FastAPI to read it from
    responses=SSE_RESPONSES,
    summary="Stream the changes of every bucket (Server-Sent Events)",
    operation_id="events_stream",
    description=TENANT_STREAM_DOC,
)
async def events_stream(
    request: Request,
    params: Annotated[TenantStreamParams, Query()],
    claims: Annotated[AccessClaims, Depends(StreamClaimsDependency())],
    watch: WatchServiceDep,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume after this cursor (sent by EventSource on reconnect)"),
    ] = None,
) -> EventStreamResponse:
    since = resume_cursor(last_event_id, params.since)
    prefix = narrow_prefix(claims, params.prefix or "") if claims.key_prefix else params.prefix
    stream = await open_tenant_stream(
        watch,
        claims.tenant_id,
        allows_bucket=claims.allows_bucket,
        expires_at=claims.expires_at,
        credential=claims.credential,
        prefix=prefix,
        since=since,
        snapshot=params.snapshot,
        include_values=params.include_values,
    )
    return EventStreamResponse(stream, request.app.state.settings.watch_slow_client_grace_seconds)


async def _refuse(websocket: WebSocket, status: int, code: str, detail: str, **extra: object) -> None:
    """The WebSocket twin of a problem response: an ``error`` message, then close code 4000 + status."""
    payload = json_data({"code": code, "status": status, "detail": detail, **extra})
    with suppress(*TRANSPORT_ERRORS, RuntimeError):
        await websocket.send_text(socket_message("error", payload))
        await websocket.close(code=4000 + status, reason=code)


@router.websocket("/kv/watch/{bucket}", name="watch_socket")
async def watch_socket(websocket: WebSocket, bucket: str) -> None:
    """The same events as the SSE endpoint, each a text message ``{"id", "event", "data"}``; the same
    query parameters (``since`` to resume); the token in the Authorization header or ``access_token``."""
    await websocket.accept()
    try:
        token = bearer_token(websocket.headers.get("authorization")) or websocket.query_params.get("access_token")
        claims = await authenticate_stream(websocket, token)  # kv:watch and the {bucket} of the path
        params = WatchParams.model_validate(dict(websocket.query_params))
        session = await open_session(
            websocket.app.state.watch, claims, bucket, params, websocket.headers.get("last-event-id")
        )
    except KVStoreError as exc:
        extra = {name: value for name, value in exc.extra.items() if name != "headers"}
        await _refuse(websocket, exc.status, exc.code, exc.detail, **extra)
        return
    except ValidationError as exc:
        errors = validation_errors([dict(error) for error in exc.errors()])
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        await _refuse(websocket, 422, "validation_error", detail, errors=errors)
        return
    except REDIS_ERRORS:
        await _refuse(websocket, 503, "storage_unavailable", STORAGE_UNAVAILABLE_DETAIL)
        return
    except Exception:  # a bug: the client still gets the error message and a close code, not a dropped socket
        logger.exception("watch socket refused by an unexpected error")
        await _refuse(websocket, 500, "internal_error", "An unexpected error occurred")
        return

    async def emit(message: WatchMessage) -> None:
        if message.event not in COMMENTS:
            await websocket.send_text(socket_message(message.event, message.data, message.id))

    async def client_gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # the client has nothing to say; its messages are ignored

    grace = websocket.app.state.settings.watch_slow_client_grace_seconds
    if await run_session(session, emit, client_gone, "websocket", grace):
        with suppress(*TRANSPORT_ERRORS, RuntimeError):
            await websocket.close(code=CLOSE_CODES.get(session.end_code, 1000), reason=session.end_code or "")


watch_socket.required_scope = StreamClaimsDependency.scope  # type: ignore[attr-defined]  # for the route test
