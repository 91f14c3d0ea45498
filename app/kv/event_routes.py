"""POST /events: CloudEvents 1.0 commits (app/kv/cloudevents.py), idempotent by the event's source + id.

The write goes through KVService like any key route (the same validation, quotas, history, feed and
audit). The event's ``source`` + ``id`` reserve a record in the idempotency store
(app/platform/idempotency.py) before the write: the same event again answers the first result with
``Idempotent-Replayed: true`` and changes nothing; another event under the same source + id is 422
``idempotency_key_reused``; the same event while the first still runs is 409. Only a success is kept:
an event that failed (a patch of a key that does not exist yet, a quota) can be sent again and applies.
"""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from secrets import token_hex
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.auth.deps import BearerClaims, require_bucket, require_key
from app.kv.cloudevents import STRUCTURED, Commit, commit_of, parse_event
from app.kv.routes import JSON, entry_response
from app.kv.schemas import Entry, encode_value
from app.kv.service import KVService
from app.platform.context import audit_note
from app.platform.errors import IdempotencyKeyInProgress, IdempotencyKeyReused, InvalidInput
from app.platform.http.schemas import PROBLEM_RESPONSES
from app.platform.idempotency import PENDING, IdempotencyStore, StoredResponse
from app.platform.redis import REDIS_ERRORS
from app.platform.security import AccessClaims

logger = logging.getLogger("kvstore.events")

router = APIRouter(tags=["kv"])  # a KV write, in CloudEvents form

EventWriteClaims = Annotated[AccessClaims, Depends(BearerClaims("kv:write"))]
KEPT_HEADERS = (b"content-type", b"etag")


async def apply(kv: KVService, tenant_id: str, commit: Commit) -> Response:
    """The write an event asks for, answered as the key routes answer it."""
    if commit.operation == "delete":
        revision = await kv.delete(tenant_id, commit.bucket, commit.key)
        body = {"key": commit.key, "bucket": commit.bucket, "deleted": True, "revision": revision}
        return Response(json.dumps(body, separators=(",", ":")), media_type=JSON)
    if commit.operation == "patch":
        entry = await kv.patch(tenant_id, commit.bucket, commit.key, commit.value)
        return entry_response(entry, entry.updated_ms)
    try:
        value_json = encode_value(commit.value, None, kv.max_json_depth)
    except ValueError as exc:
        errors = [{"field": "data.resource_data", "message": str(exc), "type": "value_error"}]
        raise InvalidInput(str(exc), errors=errors) from exc
    entry = await kv.put(tenant_id, commit.bucket, commit.key, value_json)
    return entry_response(entry, entry.updated_ms, 201 if entry.created else 200)


@router.post(
    "/events",
    response_model=Entry,
    responses={
        201: {"description": "Created (resource_data of a new key)", "model": Entry},
        **PROBLEM_RESPONSES(401, 403, 404, 409, 413, 415, 422),
    },
    summary="Commit a CloudEvents 1.0 event: create (resource_data), merge-patch (patch) or delete an entry",
    operation_id="events_commit",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {
                    "schema": {"type": "object"},
                    "examples": {
                        "create": {
                            "summary": "Create or replace an entry",
                            "value": {
                                "specversion": "1.0",
                                "id": "evt-1",
                                "source": "/orders",
                                "type": "com.example.order.created",
                                "subject": "order:42",
                                "data": {"resource_id": "order:42", "resource_data": {"status": "new"}},
                            },
                        },
                        "patch": {
                            "summary": "Merge-patch it",
                            "value": {
                                "specversion": "1.0",
                                "id": "evt-2",
                                "source": "/orders",
                                "type": "com.example.order.updated",
                                "data": {"resource_id": "order:42", "patch": {"status": "paid"}},
                            },
                        },
                        "delete": {
                            "summary": "Delete it",
                            "value": {
                                "specversion": "1.0",
                                "id": "evt-3",
                                "source": "/orders",
                                "type": "com.example.order.deleted",
                                "data": {"resource_id": "order:42", "deleted": True},
                            },
                        },
                    },
                }
                for media in (STRUCTURED, JSON)
            },
        }
    },
)
async def commit_event(request: Request, claims: EventWriteClaims) -> Response:
    """Applies one CloudEvents 1.0 event to an entry: `data.resource_data` creates or replaces it
    (201/200), `data.patch` merge-patches it (RFC 7396), `data.deleted: true` deletes it. The key is
    `data.resource_id`, else `subject`; the bucket the `bucket` extension attribute, else
    `data.bucket`, else `default`. Structured mode (`application/cloudevents+json` or
    `application/json`) or binary mode (`ce-*` headers, the body is `data`). The event's `source` +
    `id` make the commit idempotent: the same event again returns the first result with
    `Idempotent-Replayed: true` and changes nothing; another event under a used `source` + `id` is 422,
    one still committing 409. Needs `kv:write`."""
    body = await request.body()
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.scope["headers"]]
    commit = commit_of(parse_event(request.headers.get("content-type", ""), headers, body))
    audit_note(action=f"kv.event_{commit.operation}", bucket=commit.bucket, key=commit.key)
    kv: KVService = request.app.state.kv_service
    kv.check_bucket(commit.bucket)
    require_bucket(claims, commit.bucket)
    require_key(claims, commit.key)
    store: IdempotencyStore = request.app.state.idempotency
    record = store.record_key(claims.tenant_id, commit.identity)
    owner = token_hex(8)
    held = await store.reserve(record, owner)
    if held == PENDING:
        raise IdempotencyKeyInProgress("this event (source + id) is still being committed; retry once it has finished")
    if isinstance(held, StoredResponse):
        if held.fingerprint != commit.fingerprint:
            raise IdempotencyKeyReused("another event with this source and id was committed; give a new event a new id")
        headers_out = [*held.headers, (b"idempotent-replayed", b"true")]
        replay = Response(held.body, status_code=held.status)
        replay.raw_headers = [*headers_out, (b"content-length", str(len(held.body)).encode())]
        return replay
    try:
        response = await apply(kv, claims.tenant_id, commit)
    except BaseException:
        with suppress(*REDIS_ERRORS):  # the event's own error is the answer
            await store.release(record, owner)
        raise
    kept = [(name, value) for name, value in response.raw_headers if name in KEPT_HEADERS]
    try:
        await store.store(
            record, owner, StoredResponse(commit.fingerprint, 0, response.status_code, kept, bytes(response.body))
        )
    except REDIS_ERRORS as exc:  # committed: the client gets its answer (a resend waits out the lease, then applies)
        logger.warning("could not keep the result of a CloudEvent commit: %s", exc.__class__.__name__)
    return response
