"""The worker's part of webhooks: a periodic round over every tenant with webhooks.

Each endpoint is worked on by one worker at a time (a lease in the data Redis, renewed per delivery,
lapsing after ``WEBHOOK_LEASE_SECONDS`` when a worker dies). One step (webhook_pull.lua) moves the
changes the endpoint subscribes to from the change feeds into its queue and moves its cursors, in one
atomic script; then the queue's head is delivered, one attempt at a time, oldest first, and the outcome
recorded (webhook_record.lua) before the next. A failed head waits for its retry and everything behind it
waits too: that is how a later change of a key never overtakes an earlier one. A worker killed between
the POST and the record sends the same delivery again (same ``webhook-id``): at least once.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from app.config import Settings
from app.platform.jobs import worker_context
from app.platform.keyspace import WEBHOOK_TENANTS
from app.platform.redis import SyncDataRedis
from app.platform.scripts import SyncScripts
from app.webhooks import delivery, metrics
from app.webhooks.store import Step, SyncWebhookStore

logger = logging.getLogger("kvstore.tasks.webhooks")

ENDPOINTS_AT_ONCE = 8  # endpoints one round serves in parallel (threads: each waits on its receiver)
FEED_ENTRIES_PER_STEP = 1000  # feed entries one pull step reads at most (matching or not)
JITTER = 0.2


@dataclass
class RoundResult:
    endpoints: int = 0
    delivered: int = 0
    failed: int = 0


def retry_delay(settings: Settings, attempts: int) -> float:
    """Seconds before the next attempt of a delivery that has failed ``attempts`` times (>= 1):
    the schedule's entry (its last one repeats), +-20 % jitter."""
    delays = settings.webhook_retry_delays
    base = delays[min(attempts, len(delays)) - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def serve_endpoint(
    store: SyncWebhookStore,
    settings: Settings,
    http: httpx.Client,
    tenant_id: str,
    hook_id: str,
    deadline: float,
) -> RoundResult:
    """Pull and deliver for one endpoint until its queue has nothing due, or the deadline."""
    result = RoundResult(endpoints=1)
    token = uuid.uuid4().hex
    lease_ms = settings.webhook_lease_seconds * 1000
    rate = settings.webhook_deliveries_per_second

    def pull() -> Step:
        return store.pull(
            tenant_id,
            hook_id,
            token,
            lease_ms=lease_ms,
            now_ms=int(time.time() * 1000),
            backlog=settings.webhook_max_backlog,
            rate=rate,
            budget=FEED_ENTRIES_PER_STEP,
        )

    step = pull()
    if step.state in ("busy", "gone") or step.hook is None:
        return result
    hook = step.hook
    try:
        metrics.backlog(tenant_id, hook_id, step.queued)
        while time.monotonic() < deadline:
            if step.head is None:
                if step.state != "idle" or not (result.delivered or result.failed):
                    break
                step = pull()  # the queue ran dry: more changes may be waiting in the feeds
                metrics.backlog(tenant_id, hook_id, step.queued)
                if step.head is None:
                    break
                continue
            head = step.head
            payload = delivery.body(store, tenant_id, hook, head)
            outcome = delivery.attempt(http, settings, hook, head.msg, payload)
            metrics.attempted(outcome.result, outcome.latency_ms / 1000)
            now_ms = int(time.time() * 1000)
            if outcome.ok:
                result.delivered += 1
            else:
                result.failed += 1
            step = store.record(
                tenant_id,
                hook_id,
                token,
                head.seq,
                ok=outcome.ok,
                status=outcome.status,
                excerpt=outcome.excerpt,
                latency_ms=outcome.latency_ms,
                started_ms=outcome.started_ms,
                now_ms=now_ms,
                next_ms=now_ms + int(retry_delay(settings, head.attempts + 1) * 1000),
                lease_ms=lease_ms,
                disable_after_ms=settings.webhook_disable_after_seconds * 1000,
                kept=settings.webhook_deliveries_kept,
                rate=rate,
            )
            if not outcome.ok:
                logger.info(
                    "webhook %s of tenant %s: delivery %d failed (%s), attempt %d",
                    hook_id,
                    tenant_id,
                    head.seq,
                    outcome.status or outcome.result,
                    head.attempts + 1,
                )
            if step.state == "disabled":
                logger.warning("webhook %s of tenant %s disabled after failing continuously", hook_id, tenant_id)
    finally:
        store.release(tenant_id, hook_id, token)
    return result


def run_round(
    client: SyncDataRedis, scripts: SyncScripts, settings: Settings, max_seconds: float = 20.0
) -> RoundResult:
    """One round over every endpoint of every tenant with webhooks, ``ENDPOINTS_AT_ONCE`` at a time."""
    store = SyncWebhookStore(client, scripts)
    work: list[tuple[str, str]] = []
    for tenant_id in store.tenants():
        hook_ids = store.hook_ids(tenant_id)
        if not hook_ids:
            store.forget_tenant(tenant_id)
            if store.hook_ids(tenant_id):  # one was registered in between: keep the tenant
                client.sadd(WEBHOOK_TENANTS, tenant_id)
        work += [(tenant_id, hook_id) for hook_id in hook_ids]
    total = RoundResult()
    if not work:
        return total
    deadline = time.monotonic() + max_seconds
    with delivery.new_client(settings) as http, ThreadPoolExecutor(min(ENDPOINTS_AT_ONCE, len(work))) as pool:
        futures = [pool.submit(serve_endpoint, store, settings, http, t, h, deadline) for t, h in work]
        for future in futures:
            part = future.result()
            total.endpoints += part.endpoints
            total.delivered += part.delivered
            total.failed += part.failed
    if total.delivered or total.failed:
        logger.info("webhooks: %d delivered, %d failed attempts", total.delivered, total.failed)
    return total


def deliver_webhooks() -> None:
    """The periodic task (every ``WEBHOOK_POLL_SECONDS``)."""
    context = worker_context()
    run_round(context.data_redis, context.scripts, context.settings)
