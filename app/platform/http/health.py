"""Health probes: liveness, readiness (data Redis) and a detailed report."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])
# The same probes at the root, where Kubernetes conventions (and the earlier Quarkus store) look for them.
root_router = APIRouter(tags=["health"])


async def _ping_queue(request: Request, timeout: float) -> dict[str, Any]:
    """The queue Redis, or ``not_used`` under HUEY_IMMEDIATE (tasks run in the API process)."""
    if request.app.state.settings.huey_immediate:
        return {"status": "not_used", "reason": "HUEY_IMMEDIATE: tasks run in the API process"}
    return await _ping(request.app.state.queue_redis, timeout)


def _queue_ok(queue: dict[str, Any]) -> bool:
    return queue["status"] in ("up", "not_used")


async def _ping(client: Any, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except Exception as exc:  # any failure is the answer we report, never a 500
        return {"status": "down", "error": exc.__class__.__name__}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@root_router.get("/health/live", summary="Liveness probe (root alias)", operation_id="root_health_live")
@router.get("/health/live", summary="Liveness probe", operation_id="health_live")
async def live() -> dict[str, str]:
    """`{"status": "ok"}` while the process answers. Checks no dependency, so a Redis outage never
    restarts the pod; the Kubernetes liveness probe and the image's HEALTHCHECK call it."""
    return {"status": "ok"}


@root_router.get(
    "/health/ready",
    summary="Readiness probe (root alias)",
    operation_id="root_health_ready",
    responses={503: {"description": "The data Redis does not answer"}},
)
@router.get(
    "/health/ready",
    summary="Readiness probe",
    operation_id="health_ready",
    responses={503: {"description": "The data Redis does not answer"}},
)
async def ready(request: Request) -> JSONResponse:
    """200 while the data Redis answers (`ready`, or `degraded` when only the queue Redis is down:
    requests still work and audit events wait in the outbox), else 503 `not_ready`. The body shows
    each Redis server's status and latency."""
    timeout = request.app.state.settings.redis_connect_timeout
    data, queue = await asyncio.gather(_ping(request.app.state.data_redis, timeout), _ping_queue(request, timeout))
    status = 200 if data["status"] == "up" else 503
    state = "not_ready" if status != 200 else ("ready" if _queue_ok(queue) else "degraded")
    return JSONResponse({"status": state, "data_redis": data, "queue_redis": queue}, status_code=status)


@router.get(
    "/health",
    summary="Health of both Redis servers",
    operation_id="health",
    responses={503: {"description": "The data Redis does not answer"}},
)
async def health(request: Request) -> JSONResponse:
    """`ok`, `degraded` (the queue Redis is down: audit events and background tasks wait) or `down`
    (503: the data Redis does not answer), with each server's status and ping latency in ms."""
    timeout = request.app.state.settings.redis_connect_timeout
    data, queue = await asyncio.gather(_ping(request.app.state.data_redis, timeout), _ping_queue(request, timeout))
    healthy = data["status"] == "up"
    overall = "ok" if healthy and _queue_ok(queue) else ("degraded" if healthy else "down")
    return JSONResponse(
        {"status": overall, "data_redis": data, "queue_redis": queue}, status_code=200 if healthy else 503
    )
