"""CORS: browser pages on the origins of CORS_ORIGINS may call the API (Starlette's CORSMiddleware,
plain ASGI, installed outermost by app/main.py so that a preflight costs nothing else and every
response, errors included, carries the headers). With CORS_ORIGINS empty nothing is installed: no
CORS header is sent and OPTIONS answers as the routes do (405).

Requests may carry every header the API reads; responses expose every header it sends (a page can
read ETag, Content-Range, the RateLimit-* headers...). ``X-Object-Meta-<name>`` headers have names
of the user's choosing: a preflight allows any of them, and they are exposed with ``*`` (which
browsers honour for requests without credentials, the API's kind: it takes bearer tokens).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from app.config import Settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Range",
    "Range",
    "Last-Event-ID",
    "X-Request-ID",
    "X-Object-Description",
)
REQUEST_HEADER_PREFIXES = ("x-object-meta-",)
EXPOSED_HEADERS = (
    "ETag",
    "Last-Modified",
    "Accept-Ranges",
    "Content-Range",
    "Content-Length",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "WWW-Authenticate",
    "X-Request-ID",
    "X-Object-Version",
    "X-Object-Description",
)


class ApiCORSMiddleware(CORSMiddleware):
    """Starlette's middleware, whose preflight also allows the ``X-Object-Meta-*`` request headers."""

    def preflight_response(self, request_headers: Headers) -> Response:
        requested = request_headers.get("access-control-request-headers")
        if requested is None:
            return super().preflight_response(request_headers)
        names = [name.strip().lower() for name in requested.split(",") if name.strip()]
        prefixed = [name for name in names if name.startswith(REQUEST_HEADER_PREFIXES)]
        if not prefixed:
            return super().preflight_response(request_headers)
        others = MutableHeaders(headers=dict(request_headers.items()))
        rest = [name for name in names if name not in prefixed]
        if rest:
            others["access-control-request-headers"] = ", ".join(rest)
        else:
            del others["access-control-request-headers"]
        response = super().preflight_response(Headers(raw=others.raw))
        if response.status_code == 200:
            allowed = response.headers.get("access-control-allow-headers", "")
            response.headers["access-control-allow-headers"] = ", ".join(filter(None, [allowed, *prefixed]))
        return response


def install_cors(app: FastAPI, settings: Settings) -> None:
    """The CORS middleware, outermost; nothing when CORS_ORIGINS is empty."""
    origins = settings.cors_origin_list
    if not origins:
        return
    exposed = list(EXPOSED_HEADERS) if settings.cors_allow_credentials else [*EXPOSED_HEADERS, "*"]
    app.add_middleware(
        ApiCORSMiddleware,
        allow_origins=origins,
        allow_methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        allow_credentials=settings.cors_allow_credentials,
        expose_headers=exposed,
        max_age=settings.cors_max_age_seconds,
    )
