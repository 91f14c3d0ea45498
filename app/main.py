"""create_app(): routers, error handlers, middleware and the lifespan that owns the Redis clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.audit import routes as audit_routes
from app.audit.middleware import AuditMiddleware
from app.auth import api_key_routes
from app.auth import routes as auth_routes
from app.auth.deps import apply_rate_limit, idempotency_caller
from app.auth.middleware import AnonymousAuthLimitMiddleware
from app.composition import build_services, close_services, start_services
from app.config import Settings, get_settings
from app.console import routes as console_routes
from app.coord import routes as coord_routes
from app.kv import bucket_routes, event_routes, flat_routes, search_routes, txn_routes
from app.objects import presign_routes
from app.objects import routes as object_routes
from app.platform.http import health
from app.platform.http.cors import install_cors
from app.platform.http.docs import install_docs
from app.platform.http.fastpath import install_hot_routes
from app.platform.http.idempotency import IdempotencyMiddleware
from app.platform.http.metrics import install_metrics
from app.platform.http.middleware import RequestContextMiddleware, RequestLimitMiddleware, quiet_paths
from app.platform.http.openapi import document_error_responses
from app.platform.http.problems import register_error_handlers
from app.platform.http.schemas import Problem
from app.platform.logging import setup_logging, warn_unknown_settings
from app.tenancy import routes as tenancy_routes
from app.transfer import routes as transfer_routes
from app.watch import routes as watch_routes
from app.webhooks import routes as webhook_routes

KEY_BODY_FACTOR = 4
"""A single-key write's body may be this many times the value limit (JSON escapes, whitespace) plus 64 KiB."""

DESCRIPTION = """A multi-tenant key-value and object store. Register, log in, and call the API
with `Authorization: Bearer <access token>` (or an API key); everything is scoped to your tenant.
Errors are `application/problem+json` (RFC 9457) with a stable `code`."""

# The tags in the order README.md presents them; every operation has exactly one of them
# (tests/platform/test_openapi_docs.py). Audit action names derive from the first tag of a route
# (app/audit/middleware.py), so a tag is never renamed.
OPENAPI_TAGS: list[dict[str, str]] = [
    {
        "name": "auth",
        "description": "Register, log in (JSON, or the OAuth2 form behind the Authorize button), refresh and end "
        "sessions, change the password. Send the access token as `Authorization: Bearer <token>`.",
    },
    {
        "name": "api-keys",
        "description": "Long-lived API keys for programs, narrowed to scopes, buckets and a key prefix. Created, "
        "listed and revoked with a login session or an `admin` key; the secret is shown once.",
    },
    {
        "name": "kv",
        "description": "The flat key-value API on the bucket `default`: JSON (or base64) values with a version "
        "as ETag, compare-and-swap (`If-Match`, `expected_version`), TTL, tags, history, JSON merge "
        "patch and all-or-nothing batches.",
    },
    {
        "name": "buckets",
        "description": "Named KV buckets (history depth, default TTL, value size limit) and the same key "
        "operations as `kv` under `/kv/buckets/{bucket}/keys`.",
    },
    {
        "name": "watch",
        "description": "A bucket's changes as Server-Sent Events, resumable with `Last-Event-ID` or `since`. "
        "The WebSocket twin, `/kv/watch/{bucket}`, is not described here (OpenAPI has no WebSockets).",
    },
    {
        "name": "objects",
        "description": "Object buckets and streamed objects: raw bodies of any size, SHA-256 ETags, `Range`, "
        "conditional requests, multipart uploads, verification and presigned URLs.",
    },
    {
        "name": "coordination",
        "description": "Leases (TTLs that keys and locks hang on) and locks with fencing tokens.",
    },
    {
        "name": "webhooks",
        "description": "Endpoints of yours that the workers call with the tenant's KV and object changes, "
        "signed per Standard Webhooks, retried with backoff, in order per key; their deliveries.",
    },
    {
        "name": "transfer",
        "description": "Export a tenant's buckets, keys and objects as a versioned archive (resumable "
        "download), import one back, and restore a deleted KV bucket.",
    },
    {"name": "tenant", "description": "The tenant's usage: counts, bytes and limits."},
    {"name": "audit", "description": "The tenant's audit trail: one event per write, newest first."},
    {
        "name": "health",
        "description": "Liveness, readiness, both Redis servers' health and the Prometheus metrics; no "
        "credentials needed.",
    },
]


def create_app(settings: Settings | None = None) -> FastAPI:
    from_environment = settings is None
    settings = settings or get_settings()
    setup_logging(settings)
    if from_environment:
        warn_unknown_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start_services(app.state)
        yield
        await close_services(app.state)

    app = FastAPI(
        title="kvstore",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        # We export Prometheus metrics ourselves; FastAPI's native OpenTelemetry would only add a
        # per-request check of the global providers.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # install_docs: the same pages with their assets served here, not from a CDN
        redoc_url=None,
    )
    install_docs(app)
    build_services(app.state, settings)  # clients and services on app.state; no connection opened yet
    register_error_handlers(app)
    prefix = settings.api_prefix
    # The flat KV routes first: they are the hottest, and their key convertor leaves /kv/buckets and
    # /kv/watch to the routers below.
    app.include_router(flat_routes.router, prefix=prefix)
    app.include_router(health.router, prefix=prefix)
    app.include_router(health.root_router)
    app.include_router(auth_routes.router, prefix=prefix)
    app.include_router(api_key_routes.router, prefix=prefix)
    app.include_router(bucket_routes.router, prefix=prefix)
    app.include_router(search_routes.router, prefix=prefix)
    app.include_router(event_routes.router, prefix=prefix)
    app.include_router(watch_routes.router, prefix=prefix)
    app.include_router(audit_routes.router, prefix=prefix)
    app.include_router(tenancy_routes.router, prefix=prefix)
    app.include_router(object_routes.router, prefix=prefix)
    app.include_router(presign_routes.router, prefix=prefix)
    app.include_router(txn_routes.router, prefix=prefix)
    app.include_router(coord_routes.router, prefix=prefix)
    app.include_router(webhook_routes.router, prefix=prefix)
    app.include_router(console_routes.router)  # /console: the web console's static files
    app.include_router(transfer_routes.router, prefix=prefix)
    app.include_router(transfer_routes.bucket_router, prefix=prefix)
    # GET and PUT of one flat key, matched before every router (app/platform/http/fastpath.py).
    install_hot_routes(app, flat_routes.router)

    @app.get("/health", tags=["health"], summary="Process liveness (root)", operation_id="root_health")
    async def root_health() -> dict[str, str]:
        """`{"status": "ok"}` while the process answers; checks no dependency (no Redis), so a
        Redis outage never restarts the pod. Kept at the root for load balancers and Docker."""
        return {"status": "ok"}

    # Innermost: Idempotency-Key on KV and object writes (nothing without the header).
    app.add_middleware(
        IdempotencyMiddleware,
        store=app.state.idempotency,
        identify=idempotency_caller(app.state),
        charge=partial(apply_rate_limit, app.state.rate_limiter),
        api_prefix=prefix,
        max_response_bytes=settings.idempotency_max_response_bytes,
        retry_after_seconds=settings.redis_retry_after_seconds,
    )
    # Then, before any parsing: 431 for oversized headers, 413 for an oversized JSON body, 415 for
    # a body that is not JSON.
    app.add_middleware(
        RequestLimitMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        max_key_body_bytes=min(settings.max_request_body_bytes, KEY_BODY_FACTOR * settings.max_value_bytes + 65_536),
        max_small_body_bytes=min(settings.max_request_body_bytes, settings.max_small_request_body_bytes),
        max_header_bytes=settings.max_request_header_bytes,
        api_prefix=prefix,
    )
    # Anonymous /auth requests spend their client address's budget before anything parses them; a
    # refusal is still audited (by the next one).
    app.add_middleware(AnonymousAuthLimitMiddleware, limiter=app.state.auth_limiter, api_prefix=prefix)
    # Next: it sees the matched route, and the request id set by the request-context middleware.
    app.add_middleware(AuditMiddleware, audit=app.state.audit, api_prefix=prefix)
    # Inside the request-context middleware, so a request it turns into a 500 is counted too.
    install_metrics(app, excluded_paths=sorted(quiet_paths(prefix)), expose=settings.enable_metrics)
    app.add_middleware(
        RequestContextMiddleware,
        log_quiet_paths=settings.log_health_requests,
        quiet=quiet_paths(prefix),
        trusted_proxies=settings.trusted_proxy_networks,
    )
    # Outermost: a preflight is answered before anything else runs, and every response, errors
    # (401, 403, 429, 500...) included, carries the CORS headers. Nothing when CORS_ORIGINS is empty.
    install_cors(app, settings)
    _install_openapi(app)
    return app


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            document_error_responses(schema, app.state.settings.api_prefix)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()
