"""The one place that turns errors into RFC 9457 application/problem+json responses."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.platform.context import request_id_var
from app.platform.errors import (
    STORAGE_FULL_DETAIL,
    STORAGE_UNAVAILABLE_DETAIL,
    KVStoreError,
    LoginThrottled,
    ServiceUnavailable,
    TooManyRequests,
    redis_error_status,
)
from app.platform.metrics import auth_failure

logger = logging.getLogger("kvstore.errors")

PROBLEM_JSON = "application/problem+json"

_HTTP_CODES = {
    400: ("bad_request", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not Found"),
    405: ("method_not_allowed", "Method Not Allowed"),
    406: ("not_acceptable", "Not Acceptable"),
    409: ("conflict", "Conflict"),
    411: ("length_required", "Length Required"),
    412: ("precondition_failed", "Precondition Failed"),
    413: ("payload_too_large", "Content Too Large"),
    415: ("unsupported_media_type", "Unsupported Media Type"),
    416: ("range_not_satisfiable", "Range Not Satisfiable"),
    422: ("validation_error", "Unprocessable Content"),
    429: ("too_many_requests", "Too Many Requests"),
    431: ("headers_too_large", "Request Header Fields Too Large"),
    500: ("internal_error", "Internal Server Error"),
    507: ("storage_full", "Insufficient Storage"),
    503: ("service_unavailable", "Service Unavailable"),
}


def problem_body(status: int, code: str, title: str, detail: str, **extra: Any) -> bytes:
    body = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body, default=str, separators=(",", ":")).encode()


def problem_response(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return Response(
        problem_body(status, code, title, detail, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _domain_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, KVStoreError)
    return domain_error_response(exc)


def domain_error_response(exc: KVStoreError) -> Response:
    """The problem response of a domain error (for middleware that answers by itself too)."""
    headers: dict[str, str] = {}
    if exc.status == 401 or isinstance(exc, LoginThrottled):
        auth_failure(exc.code)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if exc.code == "invalid_token" else "Bearer"
    if isinstance(exc, TooManyRequests | ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    extra = dict(exc.extra)  # the same error may be raised again (a remembered rate-limit refusal)
    headers.update(extra.pop("headers", {}))
    return problem_response(exc.status, exc.code, exc.title, exc.detail, headers=headers, **extra)


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _message(err: dict[str, Any]) -> str:
    """Pydantic's message, without the "Value error, " it puts before a validator's own words."""
    message = str(err.get("msg", ""))
    return message.removeprefix("Value error, ") if err.get("type") == "value_error" else message


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Pydantic errors as [{field, message, type}], never echoing the (possibly huge) input."""
    return [
        {"field": _field_name(tuple(err.get("loc", ()))), "message": _message(err), "type": err.get("type", "")}
        for err in errors
    ]


def _request_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(list(exc.errors()))
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "Invalid request"
    return problem_response(422, "validation_error", "Unprocessable Content", detail, errors=errors)


def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
        # FastAPI's JSON parsing ran out of stack: nesting far beyond max_json_depth.
        limit = request.app.state.settings.max_json_depth
        detail = f"the JSON body is nested deeper than {limit} levels"
        errors = [{"field": "body", "message": detail, "type": "json_too_deep"}]
        return problem_response(422, "validation_error", "Unprocessable Content", detail, errors=errors)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP Error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        detail = "the body is not valid UTF-8 JSON"
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such route"
    return problem_response(exc.status_code, code, title, detail, headers=dict(exc.headers or {}))


def redis_unavailable_response(retry_after: int = 2) -> Response:
    return problem_response(
        503,
        "storage_unavailable",
        "Service Unavailable",
        STORAGE_UNAVAILABLE_DETAIL,
        headers={"Retry-After": str(retry_after)},
    )


STORAGE_FULL_LOG_INTERVAL_SECONDS = 60.0
_storage_full_logged_at = -STORAGE_FULL_LOG_INTERVAL_SECONDS


def storage_full_response() -> Response:
    return problem_response(
        507,
        "storage_full",
        "Insufficient Storage",
        STORAGE_FULL_DETAIL,
    )


def _redis_error(request: Request, exc: Exception) -> Response:
    status = redis_error_status(exc)
    if status == 507:
        # Lua scripts hit the limit at their first write, before changing anything: nothing half-written.
        global _storage_full_logged_at
        now = time.monotonic()
        if now - _storage_full_logged_at >= STORAGE_FULL_LOG_INTERVAL_SECONDS:
            _storage_full_logged_at = now
            logger.warning("data Redis is at its maxmemory: writes are refused with 507, reads still work")
        return storage_full_response()
    if status is None:
        raise exc  # a real bug: let the 500 path log it
    logger.warning("redis unavailable: %s", exc.__class__.__name__)
    settings = getattr(request.app.state, "settings", None)
    return redis_unavailable_response(settings.redis_retry_after_seconds if settings else 2)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KVStoreError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    for exc_class in (RedisConnectionError, RedisTimeoutError, RedisClusterException, ResponseError):
        app.add_exception_handler(exc_class, _redis_error)
