"""Plain ASGI middleware: request ids, context for logs, the access log and the last-resort 500."""

from __future__ import annotations

import logging
import re
import time
from random import getrandbits
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import IPNetwork
from app.platform.context import client_ip_var, request_id_var, response_headers_var, tenant_id_var, username_var
from app.platform.http.client_ip import client_ip
from app.platform.http.problems import problem_body, problem_response

logger = logging.getLogger("kvstore.request")
access_logger = logging.getLogger("kvstore.access")

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@=+~,/-]{1,128}$")


def quiet_paths(api_prefix: str) -> frozenset[str]:
    """Scrapes and probes: not logged by default and not counted in request metrics."""
    return frozenset(
        {
            "/metrics",
            "/health",
            "/health/live",
            "/health/ready",
            f"{api_prefix}/health",
            f"{api_prefix}/health/live",
            f"{api_prefix}/health/ready",
        }
    )


QUIET_PATHS = quiet_paths("/api/v1")

RESPONSE_START = "kvstore.response_start"
"""Scope key of the request's :class:`ResponseStart`, recorded by the request-context middleware."""


class ResponseStart:
    """The status of a request's response and when its headers went out (``perf_counter``); 0 until
    the app answers. The request-context middleware records it for the middlewares inside it, which
    read it rather than each wrap ``send`` again: two fewer coroutine calls per message of every
    response, PUT +3.5% and GET +6% (100,000 keys, bench-20261207T100702Z.json)."""

    __slots__ = ("at", "status")

    def __init__(self) -> None:
        self.status = 0
        self.at = 0.0

    def record(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.at = time.perf_counter()


def watch_response(scope: Scope, send: Send) -> tuple[ResponseStart, Send]:
    """The request's :class:`ResponseStart` and the ``send`` to pass on: the one the request-context
    middleware records with ``send`` as it is, or else (no such middleware outside) a new one and a
    ``send`` that records it."""
    start = scope.get(RESPONSE_START)
    if isinstance(start, ResponseStart):
        return start, send
    start = ResponseStart()

    async def recording(message: Message) -> None:
        start.record(message)
        await send(message)

    return start, recording


def route_template(scope: Scope) -> str | None:
    """The full path template of the matched route (``/api/v1/kv/{key}``), None if none matched yet.

    FastAPI keeps the route of an included router in ``scope["route"]`` without the include prefix;
    the prefixed template is on the effective route context it stores in ``scope["fastapi"]``."""
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if isinstance(template, str) and template:
        return template
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None)


class RequestContextMiddleware:
    """Gives every request an id (the client's X-Request-ID when well-formed), echoes it on the
    response, logs one access line, and turns an unhandled exception into a 500 problem. The
    client's address (``client_ip_var``) is the peer's, or X-Forwarded-For's when the peer is one of
    ``trusted_proxies`` (app/platform/http/client_ip.py)."""

    def __init__(
        self,
        app: ASGIApp,
        log_quiet_paths: bool = False,
        quiet: frozenset[str] = QUIET_PATHS,
        trusted_proxies: tuple[IPNetwork, ...] = (),
    ) -> None:
        self.app = app
        self.log_quiet_paths = log_quiet_paths
        self.quiet = quiet
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = None
        forwarded_for: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if request_id is None:
                    candidate = value.decode("latin-1")
                    request_id = candidate if REQUEST_ID_RE.fullmatch(candidate) else ""
            elif name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
        # 32 hex digits from the process's Mersenne Twister (reseeded in each forked worker): an id
        # to find a request by, no secret, so no getrandom() syscall per request as uuid4() makes.
        request_id = request_id or f"{getrandbits(128):032x}"
        request_id_var.set(request_id)
        extra_headers: list[tuple[bytes, bytes]] = []
        response_headers_var.set(extra_headers)
        tenant_id_var.set(None)
        username_var.set(None)
        client = scope.get("client")
        client_ip_var.set(client_ip(client[0] if client else None, forwarded_for, self.trusted_proxies))
        started = time.perf_counter()
        response = scope[RESPONSE_START] = ResponseStart()
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.record(message)
                message["headers"] = [*message.get("headers", []), header, *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method", "WS"), scope.get("path"))
            if scope["type"] == "http" and response.status == 0:
                response.status = 500  # logged as the answer even if the client is gone before it
                body = problem_body(500, "internal_error", "Internal Server Error", "An unexpected error occurred")
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            path = scope.get("path", "")
            # The line's fields are worked out only when it is written (LOG_LEVEL INFO or DEBUG).
            if (self.log_quiet_paths or path not in self.quiet) and access_logger.isEnabledFor(logging.INFO):
                access_logger.info(
                    "%s %s %s",
                    scope.get("method", "WS"),
                    path,
                    response.status,
                    extra={
                        "route": route_template(scope),
                        "method": scope.get("method", "WS"),
                        "status": response.status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )


class RequestLimitMiddleware:
    """Guards the API against hostile requests before anything parses them:

    - request headers over ``max_header_bytes`` in all (names and values) are 431: uvicorn's
      default HTTP parser (httptools) takes headers of any size;
    - a path whose percent-escapes are not UTF-8 is 422 (a key or name must not silently change);
    - a body over the limit of its route is 413, from Content-Length before reading, else while it
      streams in (chunked): ``max_body_bytes`` for KV batches, ``max_key_body_bytes`` for single-key
      writes, ``max_small_body_bytes`` for every other JSON route (so no route buffers more than it can use);
    - a body whose Content-Type is not JSON is 415.

    Object data (``PUT .../objects/{name}`` and parts) streams under the object store's own limits
    and carries any media type; ``/auth/token`` takes a form."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_header_bytes: int,
        api_prefix: str,
        max_key_body_bytes: int | None = None,
        max_small_body_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_key_body_bytes = max_key_body_bytes or max_body_bytes
        self.max_small_body_bytes = max_small_body_bytes or max_body_bytes
        self.kv_prefix = f"{api_prefix.rstrip('/')}/kv"
        self.max_header_bytes = max_header_bytes
        self.prefix = api_prefix.rstrip("/")
        self.objects_prefix = f"{self.prefix}/objects/buckets/"
        self.form_paths = frozenset({f"{self.prefix}/auth/token"})
        self.events_path = f"{self.prefix}/events"
        self.imports_path = f"{self.prefix}/imports"

    def _body_limit(self, path: str) -> int:
        """The largest body the route of ``path`` can use (decided before routing, from the path)."""
        if path == self.kv_prefix or path.startswith(self.kv_prefix + "/"):
            return self.max_body_bytes if path.endswith("/batch") else self.max_key_body_bytes
        if path == self.events_path:  # a CloudEvent commits one entry
            return self.max_key_body_bytes
        return self.max_small_body_bytes

    def _raw_object_data(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if scope["method"] == "POST" and path.endswith("/presign"):  # a JSON body, not object data
            return False
        if scope["method"] == "POST" and path == self.imports_path:  # an archive, streamed
            return True
        return path.startswith(self.objects_prefix) and "/objects/" in path[len(self.objects_prefix) :]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            detail = f"the request headers are over {self.max_header_bytes} bytes"
            response = problem_response(
                431, "headers_too_large", "Request Header Fields Too Large", detail, limit=self.max_header_bytes
            )
            await response(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or b""
        if b"%" in raw_path and not _utf8(unquote_to_bytes(raw_path)):
            # Servers decode such a path with U+FFFD in place of the bad bytes: a name would change.
            detail = "the percent-decoded path is not valid UTF-8"
            errors = [{"field": "path", "message": detail, "type": "value_error"}]
            response = problem_response(422, "validation_error", "Unprocessable Content", detail, errors=errors)
            await response(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS") or self._raw_object_data(scope):
            await self.app(scope, receive, send)
            return
        length, content_type, chunked = None, "", False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = _content_length(value)
            elif name == b"content-type":
                content_type = value.decode("latin-1").split(";")[0].strip().lower()
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        limit = self._body_limit(scope["path"])
        if length is not None and length > limit:
            response = problem_response(
                413, "payload_too_large", "Content Too Large", f"the request body is over {limit} bytes", limit=limit
            )
            await response(scope, receive, send)
            return
        has_body = chunked or bool(length)
        if has_body and scope["path"] not in self.form_paths and not _is_json(content_type):
            detail = f"send the body as application/json, not {content_type[:80] or 'without a Content-Type'}"
            response = problem_response(415, "unsupported_media_type", "Unsupported Media Type", detail)
            await response(scope, receive, send)
            return
        received = 0

        async def receive_with_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, which FastAPI's body parsing passes on (any other error there
                    # becomes a 400): the error handlers answer it as a 413 problem.
                    raise HTTPException(413, f"the request body is over {limit} bytes")
            return message

        await self.app(scope, receive_with_limit, send)


MAX_LENGTH_DIGITS = 18  # a longer Content-Length is over any limit (and int() refuses over 4300 digits)


def _content_length(value: bytes) -> int | None:
    """A Content-Length of ASCII digits as a number (a huge one capped, still over every limit);
    None when it is no number, which the body's own size then decides."""
    if not value.isdigit():  # bytes.isdigit() is ASCII only
        return None
    digits = value.lstrip(b"0") or b"0"
    return int(digits) if len(digits) <= MAX_LENGTH_DIGITS else 10**MAX_LENGTH_DIGITS


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )
