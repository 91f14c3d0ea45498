"""The clients and services of an API process, built once and shared by both front ends: the HTTP
app (app/main.py keeps them on ``app.state``) and the gRPC server (app/grpc/server.py keeps them on
its own state object). Whatever either front end does goes through these same objects, so a rule
lives in one service, whichever protocol reached it."""

from __future__ import annotations

from typing import Any

from app.audit import tasks as audit_tasks
from app.audit.service import AuditService
from app.auth.service import AuthService
from app.auth.store import AuthStore
from app.auth.throttle import AnonymousLimiter
from app.config import Settings
from app.coord.service import CoordService
from app.kv.search import SearchService
from app.kv.service import KVService
from app.objects import tasks as object_tasks
from app.objects.presign import PresignSigner
from app.objects.service import ObjectService, compaction_requester
from app.platform.idempotency import IdempotencyStore
from app.platform.queue import TaskQueue
from app.platform.redis import (
    create_async_data_redis,
    create_async_queue_redis,
    create_data_lane,
    warm_up_data_redis,
)
from app.platform.scripts import Scripts
from app.platform.security import PasswordHasher, TokenService
from app.tenancy.ratelimit import RateLimiter
from app.tenancy.service import UsageService
from app.transfer import tasks as transfer_tasks
from app.transfer.service import TransferService
from app.watch.service import WatchService
from app.webhooks.service import WebhookService


def build_services(state: Any, settings: Settings) -> None:
    """Clients and services, set as attributes of ``state``; nothing here opens a connection yet."""
    state.settings = settings
    state.data_redis = create_async_data_redis(settings)
    state.queue_redis = create_async_queue_redis(settings)
    state.scripts = Scripts(state.data_redis, create_data_lane(settings))
    state.tokens = TokenService(settings)
    state.hasher = PasswordHasher(settings.bcrypt_rounds, settings.bcrypt_max_concurrency, settings.bcrypt_niceness)
    state.auth_service = AuthService(state.data_redis, state.scripts, state.hasher, state.tokens, settings)
    state.sessions = state.auth_service.sessions
    state.api_keys = state.auth_service.api_keys
    state.auth_limiter = AnonymousLimiter(AuthStore(state.data_redis, state.scripts), settings)
    state.kv_service = KVService(state.data_redis, state.scripts, settings)
    state.search_service = SearchService(state.data_redis, state.scripts, settings)
    state.coord_service = CoordService(state.data_redis, state.scripts, settings)
    state.rate_limiter = RateLimiter(state.data_redis, state.scripts, settings)
    state.usage_service = UsageService(state.data_redis, state.scripts, settings)
    # The worker's tasks the API enqueues, by name: the API never imports the worker package.
    state.task_queue = TaskQueue(settings, state.queue_redis)
    state.object_service = ObjectService(
        state.data_redis,
        state.scripts,
        settings,
        compaction_requester(state.task_queue.task(object_tasks.compact_objects)),
    )
    state.presigner = PresignSigner(settings.secret_key)
    state.audit = AuditService(state.data_redis, settings, state.task_queue.task(audit_tasks.write_audit_events))
    state.idempotency = IdempotencyStore(
        state.scripts, settings.idempotency_ttl_seconds, settings.idempotency_lease_seconds
    )
    state.transfers = TransferService(
        state.data_redis,
        state.scripts,
        settings,
        state.kv_service,
        state.object_service,
        state.task_queue.task(transfer_tasks.run_transfer),
    )
    state.watch = WatchService(state.data_redis, state.scripts, state.kv_service, settings, state.sessions)
    state.webhooks = WebhookService(state.data_redis, state.scripts, settings)


async def start_services(state: Any) -> None:
    """Connect, and start following ended sessions (until it has read them, tokens are checked in Redis)."""
    await warm_up_data_redis(state.data_redis)
    state.sessions.start()


async def close_services(state: Any) -> None:
    """Stop the background work, then close the clients it reads with."""
    await state.sessions.aclose()
    await state.api_keys.aclose()
    await state.watch.aclose()  # before the clients it reads with
    await state.audit.aclose()
    state.hasher.close()
    await state.scripts.aclose()
    await state.data_redis.aclose()
    await state.queue_redis.aclose()
