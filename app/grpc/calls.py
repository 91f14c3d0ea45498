"""What every RPC does around its own work, as the HTTP middleware and dependencies do for a request:
a request id, authentication (``authorization: Bearer <token or API key>`` metadata, through the same
``authenticate`` as HTTP), the scope, bucket and key prefix of an API key, the tenant's rate limit,
the audit event of a write, the call's metrics, and any error as a gRPC status (app/grpc/errors.py).

A servicer method decorated with :func:`unary` or :func:`stream` gets a :class:`Call` in place of
grpc's context."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from app.audit.model import new_event
from app.audit.service import AuditService
from app.auth.deps import (
    apply_rate_limit,
    authenticate,
    bearer_token,
    narrow_prefix,
    require_key,
    require_resource,
    require_scope,
)
from app.grpc import metrics
from app.grpc.errors import RpcError, from_exception
from app.platform.context import AuditNote, audit_note, audit_note_var, client_ip_var, request_id_var
from app.platform.errors import InvalidInput
from app.platform.security import AccessClaims

logger = logging.getLogger("kvstore.grpc")

REQUEST_ID_METADATA = "x-request-id"

Request = TypeVar("Request")
Response = TypeVar("Response")


def peer_address(peer: str | None) -> str | None:
    """The client's address in grpc's peer string: ``ipv4:1.2.3.4:5``, ``ipv6:%5B::1%5D:5``; None for
    ``unix:...`` and anything else."""
    if not peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":  # grpc writes the brackets percent-encoded: ipv6:%5B::1%5D:5
        return unquote(rest).rpartition(":")[0].strip("[]") or None
    return None


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request that is no valid message of its type (bad wire format, a string that is not UTF-8):
    the handler answers INVALID_ARGUMENT instead of grpc's UNKNOWN."""

    message_type: str
    reason: str


def lenient_parser(message_class: Any) -> Callable[[bytes], Any]:
    """``message_class.FromString``, answering :class:`Malformed` instead of raising."""

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return Malformed(message_class.DESCRIPTOR.full_name, str(exc).rpartition(": ")[2])

    return parse


def check_message(request: object) -> None:
    if isinstance(request, Malformed):
        raise InvalidInput(f"the request is not a valid {request.message_type} message: {request.reason}")


class Call:
    """One RPC: its state (the shared services), grpc's context, and what the wrapper records."""

    def __init__(self, state: Any, context: aio.ServicerContext[Any, Any], service: str, method: str) -> None:
        self.state = state
        self.context = context
        self.service = service
        self.method = method
        self.http_status = 200  # the status the HTTP API would answer: the audit event's
        self.claims: AccessClaims | None = None

    async def authorize(self, scope: str, bucket: str | None = None, key: str | None = None) -> AccessClaims:
        """The caller's principal, holding ``scope`` (and, for an API key, ``bucket`` and ``key``);
        one request of the tenant's rate limit spent. UNAUTHENTICATED / PERMISSION_DENIED /
        RESOURCE_EXHAUSTED otherwise."""
        metadata = {item.key: item.value for item in self.context.invocation_metadata() or ()}
        authorization = metadata.get("authorization")
        token = bearer_token(authorization if isinstance(authorization, str) else None)
        claims = await authenticate(self.state, token)
        require_scope(claims, scope)  # before the audit notes: a refused scope names no bucket or key
        if bucket is not None:
            audit_note(bucket=bucket)
        if key is not None:
            audit_note(key=key)
        require_resource(claims, bucket, key)
        await apply_rate_limit(self.state.rate_limiter, claims.tenant_id)
        self.claims = claims
        return claims

    def check_key(self, key: str) -> None:
        """PERMISSION_DENIED for a key outside the caller's key prefix (batch items, txn operations)."""
        assert self.claims is not None
        require_key(self.claims, key)

    def list_prefix(self, prefix: str) -> str:
        """The prefix a listing or watch filters on, within the caller's key prefix."""
        assert self.claims is not None
        return narrow_prefix(self.claims, prefix)


class _Recorder:
    """Metrics, request id, audit note and the error status of one call."""

    def __init__(self, servicer: Any, context: aio.ServicerContext[Any, Any], method: str, kind: str) -> None:
        self.call = Call(servicer.state, context, servicer.SERVICE, method)
        self.kind = kind
        self.started = time.perf_counter()
        self.note = AuditNote()
        self.request_id = uuid.uuid4().hex
        request_id_var.set(self.request_id)
        client_ip_var.set(peer_address(context.peer()))
        audit_note_var.set(self.note)
        metrics.STARTED.labels(self.call.service, method, kind).inc()

    def finish(self, code: grpc.StatusCode, audit_action: str | None, http_status: int) -> None:
        call = self.call
        metrics.HANDLED.labels(call.service, call.method, self.kind, code.name).inc()
        metrics.HANDLING_SECONDS.labels(call.service, call.method, self.kind).observe(
            time.perf_counter() - self.started
        )
        if audit_action is None or self.note.skip:
            return
        audit: AuditService = call.state.audit
        try:
            audit.record(
                new_event(
                    action=self.note.action or audit_action,
                    status=http_status,
                    tenant_id=self.note.tenant_id,
                    username=self.note.username,
                    api_key_id=self.note.api_key_id,
                    api_key_name=self.note.api_key_name,
                    bucket=self.note.bucket,
                    key=self.note.key,
                    request_id=self.request_id,
                    client_ip=client_ip_var.get(),
                )
            )
        except Exception:  # auditing never turns a finished call into an error
            logger.exception("could not record the audit event")

    async def fail(self, exc: BaseException, audit_action: str | None) -> RpcError:
        error = from_exception(exc)
        self.finish(error.status, audit_action, error.http_status)
        return error


async def abort(context: aio.ServicerContext[Any, Any], error: RpcError, request_id: str) -> None:
    """End the call with ``error``'s status (raises, as grpc's abort does)."""
    metadata = ((REQUEST_ID_METADATA, request_id), *error.trailing_metadata())
    await context.abort(error.status, error.message, trailing_metadata=metadata)


Result = TypeVar("Result")


async def _handle(
    servicer: Any,
    method: Callable[[Any, Any, Call], Awaitable[Result]],
    request: Any,
    context: aio.ServicerContext[Any, Any],
    kind: str,
    audit: str | None,
) -> Result:
    """Run one call of ``method`` (unary or server-streaming) recorded by a :class:`_Recorder`; an
    error ends it with its status."""
    recorder = _Recorder(servicer, context, method.__name__, kind)
    context.set_trailing_metadata(((REQUEST_ID_METADATA, recorder.request_id),))
    try:
        check_message(request)
        result = await method(servicer, request, recorder.call)
    except asyncio.CancelledError:
        recorder.finish(grpc.StatusCode.CANCELLED, audit, 499)
        raise
    except Exception as exc:
        await abort(context, await recorder.fail(exc, audit), recorder.request_id)
        raise AssertionError("unreachable: abort raises") from exc
    recorder.finish(grpc.StatusCode.OK, audit, recorder.call.http_status)
    return result


UnaryMethod = Callable[[Any, Request, Call], Awaitable[Response]]
UnaryHandler = Callable[[Any, Request, aio.ServicerContext[Any, Any]], Awaitable[Response]]


def unary(audit: str | None = None) -> Callable[[UnaryMethod[Request, Response]], UnaryHandler[Request, Response]]:
    """A unary RPC; ``audit``: the audit action of a write (the HTTP route's: ``kv.put_key``...)."""

    def wrap(method: UnaryMethod[Request, Response]) -> UnaryHandler[Request, Response]:
        @functools.wraps(method)
        async def handler(self: Any, request: Request, context: aio.ServicerContext[Any, Any]) -> Response:
            return await _handle(self, method, request, context, "unary", audit)

        return handler

    return wrap


StreamMethod = Callable[[Any, Request, Call], Awaitable[None]]
StreamHandler = Callable[[Any, Request, aio.ServicerContext[Any, Any]], Awaitable[None]]


def stream(method: StreamMethod[Request]) -> StreamHandler[Request]:
    """A server-streaming RPC (watch) that sends with ``call.context.write``: metrics over its whole
    life, an error as its final status."""

    @functools.wraps(method)
    async def handler(self: Any, request: Request, context: aio.ServicerContext[Any, Any]) -> None:
        await _handle(self, method, request, context, "server_stream", None)

    return handler
