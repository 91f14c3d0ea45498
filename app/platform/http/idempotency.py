"""Plain ASGI middleware: ``Idempotency-Key`` on mutating KV and object requests (README "Idempotent writes").

Which requests: POST, PUT, PATCH and DELETE under the API's ``/kv``, ``/objects`` and ``/events``
paths that carry the header. Without the header nothing happens here beyond a look at the request's
headers: no Redis round trip, no authentication.

With it, the middleware finds the caller through ``identify`` (the same authentication as the routes:
tokens and API keys are checked in memory) and, when the credential is good (else the route answers
401 as always):

- a header that is not 1 to 255 printable ASCII characters (or sent twice) is 422;
- a key never seen (or released) is reserved, the request runs, and its response (status, the app's
  headers, the body up to ``max_response_bytes``) is stored with the request's fingerprint before the
  client receives it; a 5xx, 401, 408 or 429, an exception, or a body the app did not read to its end
  releases the key instead, so a retry applies;
- a key whose request still runs is 409 ``idempotency_key_in_progress`` (Retry-After: 1);
- a key with a stored response: the request's body is read and hashed; the same fingerprint (method,
  path, query, credential, body) answers the stored response with ``Idempotent-Replayed: true``,
  another is 422 ``idempotency_key_reused``. A response whose body was over the cap is replayed with
  its status and headers, an empty body and ``Idempotent-Body-Omitted: <its length>``.

It sits inside the request-limit middleware, so oversized or malformed requests never reach it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from secrets import token_hex

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.context import audit_note
from app.platform.errors import IdempotencyKeyInProgress, IdempotencyKeyReused, KVStoreError, redis_error_status
from app.platform.http.problems import (
    domain_error_response,
    problem_response,
    redis_unavailable_response,
    storage_full_response,
)
from app.platform.idempotency import (
    Caller,
    Fingerprint,
    IdempotencyStore,
    StoredResponse,
    valid_key,
)
from app.platform.redis import REDIS_ERRORS

logger = logging.getLogger("kvstore.idempotency")

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RELEASED_STATUSES = frozenset({401, 408, 429})
"""Answers that did not apply the request and may well succeed on a retry (besides every 5xx)."""
BODYLESS_STATUSES = frozenset({204, 304})

Identify = Callable[[str | None], Awaitable[Caller | None]]
"""The caller of a request from its Authorization header; None when the credential is missing or bad."""
Charge = Callable[[str], Awaitable[None]]
"""Spend one request of the tenant's rate limit (raises TooManyRequests), for the answers given here."""


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        store: IdempotencyStore,
        identify: Identify,
        charge: Charge,
        api_prefix: str,
        max_response_bytes: int,
        retry_after_seconds: int = 2,
    ) -> None:
        self.app = app
        self.store = store
        self.identify = identify
        self.charge = charge
        prefix = api_prefix.rstrip("/")
        roots = tuple(f"{prefix}/{part}" for part in ("kv", "objects", "events"))
        self.root_paths = frozenset(roots)
        self.root_prefixes = tuple(root + "/" for root in roots)
        self.max_response_bytes = max_response_bytes
        self.retry_after_seconds = retry_after_seconds

    def _covered(self, scope: Scope) -> bool:
        """A write under /kv, /objects or /events that carries the header. The plain case (no header)
        costs a few hundred nanoseconds: a method test, a path test and a look at each header name."""
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS:
            return False
        path: str = scope["path"]
        if not (path.startswith(self.root_prefixes) or path in self.root_paths):
            return False
        for name, _ in scope["headers"]:  # noqa: SIM110 - a plain loop: any() and its generator cost more
            if name == b"idempotency-key":
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._covered(scope):
            await self.app(scope, receive, send)
            return
        keys: list[bytes] = []
        authorization: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                keys.append(value)
            elif name == b"authorization" and authorization is None:
                authorization = value
        caller = await self.identify(authorization.decode("latin-1") if authorization is not None else None)
        if caller is None:  # no or a bad credential: the route answers 401 as it always does
            await self.app(scope, receive, send)
            return
        if len(keys) != 1 or not valid_key(keys[0]):
            detail = "Idempotency-Key must be one header of 1 to 255 printable ASCII characters"
            errors = [{"field": "Idempotency-Key", "message": detail, "type": "value_error"}]
            invalid = problem_response(422, "validation_error", "Unprocessable Content", detail, errors=errors)
            await self._answer(scope, receive, send, caller, invalid, "idempotency.invalid_key")
            return
        record = self.store.record_key(caller.tenant_id, keys[0])
        owner = token_hex(8)
        fingerprint = Fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), caller.principal)
        try:
            held = await self.store.reserve(record, owner)
        except REDIS_ERRORS as exc:
            await self._unavailable(exc)(scope, receive, send)
            return
        if held is None:
            await self._run(scope, receive, send, record, owner, fingerprint)
        elif isinstance(held, StoredResponse):
            await self._replay(scope, receive, send, caller, fingerprint, held)
        else:
            await self._answer(scope, receive, send, caller, self._in_progress(), "idempotency.in_progress")

    # -- the first request with a key ---------------------------------------------------------------

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, record: str, owner: str, fingerprint: Fingerprint
    ) -> None:
        loop = asyncio.get_running_loop()
        extend_every = self.store.lease_seconds / 3
        extended_at = loop.time()
        body_done = not _has_body(scope)

        async def receive_hashing() -> Message:
            nonlocal body_done, extended_at
            message = await receive()
            if message["type"] == "http.request":
                fingerprint.update(message.get("body", b""))
                if not message.get("more_body", False):
                    body_done = True
                if loop.time() - extended_at > extend_every:  # a long upload keeps its reservation
                    extended_at = loop.time()
                    await self._quietly(self.store.extend(record, owner))
            return message

        start: Message | None = None
        held: list[bytes] = []
        held_bytes = 0
        streaming = False  # over the cap: passed on as it comes, stored without its body
        settled = False

        async def settle(status: int, body: bytes, omitted: int | None) -> None:
            nonlocal settled
            settled = True
            if status >= 500 or status in RELEASED_STATUSES or not body_done:
                await self._quietly(self.store.release(record, owner))
                return
            headers = [(n, v) for n, v in (start or {}).get("headers", []) if n.lower() != b"content-length"]
            response = StoredResponse(fingerprint.hexdigest(), fingerprint.length, status, headers, body, omitted)
            if not await self._quietly(self.store.store(record, owner, response)):
                logger.warning("an idempotency reservation ran out before its response was stored")

        async def send_capturing(message: Message) -> None:
            nonlocal start, held_bytes, streaming
            kind = message["type"]
            if kind == "http.response.start":
                start = message
                return
            if kind != "http.response.body" or start is None:
                await send(message)
                return
            chunk: bytes = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if not streaming and held_bytes + len(chunk) <= self.max_response_bytes:
                held.append(chunk)
                held_bytes += len(chunk)
                if not more:
                    body = b"".join(held)
                    await settle(start["status"], body, None)
                    await send(start)
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            if not streaming:
                streaming = True
                await send(start)
                if held:
                    await send({"type": "http.response.body", "body": b"".join(held), "more_body": True})
            held_bytes += len(chunk)
            if not more:
                await settle(start["status"], b"", held_bytes)
            await send(message)

        try:
            await self.app(scope, receive_hashing, send_capturing)
        finally:
            if not settled:  # an exception, or an app that never finished its response
                await self._quietly(self.store.release(record, owner))

    # -- a key seen before --------------------------------------------------------------------------

    async def _replay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        fingerprint: Fingerprint,
        stored: StoredResponse,
    ) -> None:
        try:
            complete = await _read_body(receive, fingerprint, stored.body_length)
        except HTTPException as exc:  # the request-limit middleware's 413 for a body over its route's limit
            response = problem_response(exc.status_code, "payload_too_large", "Content Too Large", str(exc.detail))
            await response(scope, receive, send)
            return
        if complete is None:
            return  # the client went away
        if not complete or fingerprint.hexdigest() != stored.fingerprint:
            detail = "this Idempotency-Key was used for a different request; use a new key for a new request"
            reused = domain_error_response(IdempotencyKeyReused(detail))
            await self._answer(scope, receive, send, caller, reused, "idempotency.reused")
            return
        headers = [*stored.headers, (b"idempotent-replayed", b"true")]
        if stored.omitted is not None:
            headers.append((b"idempotent-body-omitted", str(stored.omitted).encode()))
        if stored.status not in BODYLESS_STATUSES:
            headers.append((b"content-length", str(len(stored.body)).encode()))
        replay = _Stored(stored.status, headers, stored.body)
        await self._answer(scope, receive, send, caller, replay, "idempotency.replay")

    def _in_progress(self) -> Response:
        detail = "a request with this Idempotency-Key is still running; retry once it has finished"
        return domain_error_response(IdempotencyKeyInProgress(detail))

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        response: Callable[[Scope, Receive, Send], Awaitable[None]],
        action: str,
    ) -> None:
        """An answer given here, rate-limited and audited like the request it answers."""
        audit_note(action=action)
        try:
            await self.charge(caller.tenant_id)
        except KVStoreError as exc:
            response = domain_error_response(exc)
        except REDIS_ERRORS as exc:
            response = self._unavailable(exc)
        await response(scope, receive, send)

    def _unavailable(self, exc: BaseException) -> Response:
        """The answer to the store's Redis error ``exc``, by the rule every Redis error follows
        (app/platform/errors.py redis_error_status): 507 when Redis is full, 503 when it cannot be
        reached; any other error reply is a bug and is raised again, to become a logged 500."""
        status = redis_error_status(exc)
        if status is None:
            raise exc
        if status == 507:
            return storage_full_response()
        logger.warning("idempotency store unavailable: %s", exc.__class__.__name__)
        return redis_unavailable_response(self.retry_after_seconds)

    async def _quietly(self, operation: Awaitable[bool]) -> bool:
        """A settling step whose failure must not change the response the client gets."""
        try:
            return await operation
        except REDIS_ERRORS as exc:
            logger.warning("could not settle an idempotency reservation: %s", exc.__class__.__name__)
            return False


class _Stored:
    """A stored response, sent as it was (ASGI app)."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


async def _read_body(receive: Receive, fingerprint: Fingerprint, limit: int) -> bool | None:
    """Hash the request body into ``fingerprint``: True when read to its end, False as soon as it
    is longer than ``limit`` (it cannot be the same request), None when the client went away."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        fingerprint.update(message.get("body", b""))
        if fingerprint.length > limit:
            return False
        if not message.get("more_body", False):
            return True
