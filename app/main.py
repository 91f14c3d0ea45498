"""create_app(): routers, error handlers, middleware and the lifespan that owns the Redis clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.errors import register_error_handlers
from app.api.openapi import document_error_responses
from app.api.v1 import audit, auth, buckets, health, kv, objects, usage, watch
from app.config import Settings, get_settings
from app.core.audit_middleware import AuditMiddleware
from app.core.logging import setup_logging
from app.core.metrics import install_metrics
from app.core.middleware import RequestContextMiddleware, RequestLimitMiddleware, quiet_paths
from app.core.ratelimit import RateLimiter
from app.core.redis import create_async_data_redis, create_async_queue_redis, warm_up_data_redis
from app.core.scripts import Scripts
from app.core.security import PasswordHasher, TokenService
from app.schemas.common import Problem
from app.services.audit import AuditService
from app.services.auth import AuthService
from app.services.kv import KVService
from app.services.objects import ObjectService, huey_enqueuer
from app.services.usage import UsageService
from app.services.watch import WatchService
from tasks.audit_log import write_audit_events
from tasks.compaction import compact_objects

DESCRIPTION = """A multi-tenant key-value and object store. Register, log in, and call the API
with `Authorization: Bearer <access token>`; everything is scoped to your tenant."""


def build_state(app: FastAPI, settings: Settings) -> None:
    """Clients and services, kept on app.state; nothing here opens a connection yet."""
    state = app.state
    state.settings = settings
    state.data_redis = create_async_data_redis(settings)
    state.queue_redis = create_async_queue_redis(settings)
    state.scripts = Scripts(state.data_redis)
    state.tokens = TokenService(settings)
    state.hasher = PasswordHasher(settings.bcrypt_rounds)
    state.auth_service = AuthService(state.data_redis, state.scripts, state.hasher, state.tokens, settings)
    state.kv_service = KVService(state.data_redis, state.scripts, settings)
    state.rate_limiter = RateLimiter(state.data_redis, state.scripts, settings)
    state.usage_service = UsageService(state.data_redis, state.scripts, settings)
    state.object_service = ObjectService(
        state.data_redis, state.scripts, settings, huey_enqueuer(state.queue_redis, compact_objects)
    )
    state.audit = AuditService(state.data_redis, state.queue_redis, settings, write_audit_events)
    state.watch = WatchService(state.data_redis, state.scripts, state.kv_service, settings)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    setup_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await warm_up_data_redis(app.state.data_redis)
        yield
        await app.state.watch.aclose()  # before the clients it reads with
        await app.state.audit.aclose()
        await app.state.data_redis.aclose()
        await app.state.queue_redis.aclose()

    app = FastAPI(
        title="kvstore",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # We export Prometheus metrics ourselves; FastAPI's native OpenTelemetry would only add a
        # per-request check of the global providers.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    build_state(app, settings)
    register_error_handlers(app)
    prefix = settings.api_prefix
    # The flat KV routes first: they are the hottest, and their key convertor leaves /kv/buckets and
    # /kv/watch to the routers below.
    app.include_router(kv.router, prefix=prefix)
    app.include_router(health.router, prefix=prefix)
    app.include_router(auth.router, prefix=prefix)
    app.include_router(buckets.router, prefix=prefix)
    app.include_router(watch.router, prefix=prefix)
    app.include_router(audit.router, prefix=prefix)
    app.include_router(usage.router, prefix=prefix)
    app.include_router(objects.router, prefix=prefix)

    @app.get("/health", tags=["health"], summary="The process answers (no dependencies)")
    async def root_health() -> dict[str, str]:
        return {"status": "ok"}

    # Innermost, before any parsing: 431 for oversized headers, 413 for an oversized JSON body, 415 for
    # a body that is not JSON.
    app.add_middleware(
        RequestLimitMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        max_header_bytes=settings.max_request_header_bytes,
        api_prefix=prefix,
    )
    # Next: it sees the matched route, and the request id set by the request-context middleware.
    app.add_middleware(AuditMiddleware, audit=app.state.audit, api_prefix=prefix)
    # Inside the request-context middleware, so a request it turns into a 500 is counted too.
    install_metrics(app, excluded_paths=quiet_paths(prefix))
    app.add_middleware(
        RequestContextMiddleware, log_quiet_paths=settings.log_health_requests, quiet=quiet_paths(prefix)
    )
    _install_openapi(app)
    return app


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            document_error_responses(schema, app.state.settings.api_prefix)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()
