"""The worker's own Prometheus metrics, fed by Huey's signals and served on their own port.

- ``kvstore_background_tasks_total{task,status}``: one per task run that ended, by how it ended:
  ``success``; ``retry`` (failed, will run again); ``failure`` (failed with no retry left);
  ``locked``, ``canceled``, ``revoked``, ``expired``, ``interrupted``, ``timeout``, ``rate-limited``.
- ``kvstore_background_task_duration_seconds{task}``: run time of each attempt that executed.
- ``kvstore_background_task_last_success_timestamp_seconds{task}``: Unix time of the task's last
  successful run (``time() - ...{task="ttl_sweep"}`` is how far behind the TTL sweep is).
- ``kvstore_audit_outbox_tenants``: tenants whose audit outbox (data Redis) holds undelivered events
  (SCARD of ``audit:outbox:tenants`` at scrape time; the periodic ``drain_audit_outbox`` empties them).
- ``kvstore_worker_heartbeat_age_seconds{loop}``: seconds since the scheduler (``scheduler``) and the
  freshest worker (``workers``) last looped; ``GET /health/live`` on the same port answers 503 past
  ``WORKER_STUCK_SECONDS`` (app/worker/heartbeat.py).
- ``kvstore_redis_up{redis,node}``, ``kvstore_redis_memory_used_bytes{redis,node}`` and
  ``kvstore_redis_memory_max_bytes{redis,node}`` (``redis`` is ``data`` or ``queue``; max 0 = no limit):
  read from ``INFO memory`` of each Redis (each master of a cluster) at scrape time. A data Redis near its
  maxmemory refuses writes with 507; the alert rules in kubernetes/monitoring/alerts.yml fire before it does.

The consumer's main process serves them on ``settings.worker_metrics_host:worker_metrics_port``
(default 0.0.0.0:9464; port 0 turns the server off), with ``GET /health/live`` beside ``/metrics``.
With ``-k process`` the tasks run in forked children, so the values go through prometheus_client's
multiprocess files: ``python -m app.worker.consumer`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh
directory (restarting itself so that prometheus_client is imported with it set).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from huey import signals
from huey.api import Huey, Task
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from app.config import Settings
from app.platform.keyspace import AUDIT_OUTBOX_TENANTS
from app.platform.redis import SyncDataRedis, create_sync_data_redis, create_sync_queue_redis
from app.webhooks import metrics as webhook_metrics
from app.worker import heartbeat

logger = logging.getLogger("kvstore.worker")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LIVENESS_PATH = "/health/live"
MAX_LOGGED_ARGUMENTS = 2000

# From a quick outbox drain to a long sweep of a big tenant.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

REGISTRY = CollectorRegistry(auto_describe=True)
"""The worker's registry (not the API's default one, so the API never serves worker series)."""

TASKS = Counter(
    "kvstore_background_tasks",
    "Background task runs that ended, by task and how they ended.",
    ["task", "status"],
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    "kvstore_background_task_duration_seconds",
    "Run time of background task attempts, in seconds.",
    ["task"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
webhook_metrics.register(REGISTRY)  # app/webhooks/metrics.py
LAST_SUCCESS = Gauge(
    "kvstore_background_task_last_success_timestamp_seconds",
    "Unix time of the last successful run of each background task.",
    ["task"],
    multiprocess_mode="max",
    registry=REGISTRY,
)

# Signals after which the task did not run (or was cut short) and no error signal follows.
_SKIPPED = {
    signals.SIGNAL_LOCKED: "locked",
    signals.SIGNAL_CANCELED: "canceled",
    signals.SIGNAL_REVOKED: "revoked",
    signals.SIGNAL_EXPIRED: "expired",
    signals.SIGNAL_INTERRUPTED: "interrupted",
    signals.SIGNAL_RATE_LIMITED: "rate-limited",
}


def _arguments(task: Task) -> str:
    text = f"args={task.args!r} kwargs={task.kwargs!r}"
    if len(text) > MAX_LOGGED_ARGUMENTS:
        text = f"{text[:MAX_LOGGED_ARGUMENTS]}... ({len(text)} characters)"
    return text


class TaskMetrics:
    """Huey signal receiver: counts every ended run, times executed ones, logs failures."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def install(self, huey: Huey) -> None:
        huey.signal()(self)

    def _elapsed(self, task: Task) -> float | None:
        with self._lock:
            started = self._started.pop(task.id, None)
        return None if started is None else time.monotonic() - started

    def _observe(self, task: Task, status: str) -> None:
        name = task.name
        TASKS.labels(name, status).inc()
        elapsed = self._elapsed(task)
        if elapsed is not None:
            TASK_DURATION.labels(name).observe(elapsed)

    def __call__(self, signal: str, task: Task, *args: Any) -> None:
        if signal == signals.SIGNAL_EXECUTING:
            with self._lock:
                self._started[task.id] = time.monotonic()
        elif signal == signals.SIGNAL_COMPLETE:
            self._observe(task, "success")
            LAST_SUCCESS.labels(task.name).set(time.time())
        elif signal in (signals.SIGNAL_ERROR, signals.SIGNAL_TIMEOUT):
            # Emitted before Huey decrements the retries, so 0 left means this was the last attempt.
            error = repr(args[0]) if args else signal
            if task.retries:
                self._observe(task, "retry" if signal == signals.SIGNAL_ERROR else "timeout")
                logger.warning(
                    "task %s %s failed (%s); %d retries left",
                    task.name,
                    task.id,
                    error,
                    task.retries,
                    extra={"task": task.name, "event": "task_retry"},
                )
            else:
                self._observe(task, "failure")
                logger.error(
                    "task %s %s failed for good (%s): %s",
                    task.name,
                    task.id,
                    error,
                    _arguments(task),
                    extra={"task": task.name, "event": "task_failed"},
                )
        elif signal in _SKIPPED:
            self._observe(task, _SKIPPED[signal])
        elif signal == signals.SIGNAL_RETRYING:
            # Only a task that raised RetryTask still has its start recorded here.
            with self._lock:
                raised_retry = task.id in self._started
            if raised_retry:
                self._observe(task, "retry")


def scrape_registry() -> CollectorRegistry:
    """What the metrics server serves: the worker registry, or the sum of every worker process's files."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


class RedisMemoryCollector(Collector):
    """Memory use and limit of the data and queue Redis, and the tenants with a waiting audit outbox,
    read when Prometheus scrapes (one INFO per Redis node, one SCARD)."""

    def __init__(self, clients: dict[str, SyncDataRedis]) -> None:
        self._clients = clients

    @staticmethod
    def _infos(client: SyncDataRedis) -> dict[str, dict[str, Any]]:
        if isinstance(client, RedisCluster):
            replies = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
            return {str(node): info for node, info in replies.items()}
        pool = client.connection_pool.connection_kwargs
        return {f"{pool.get('host', '')}:{pool.get('port', '')}": client.info("memory")}

    def describe(self) -> Any:
        return self._families()  # registering must not query Redis

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "kvstore_redis_up", "1 when the worker could read INFO from the Redis.", labels=["redis", "node"]
        )
        used = GaugeMetricFamily(
            "kvstore_redis_memory_used_bytes", "Memory the Redis uses (INFO used_memory).", labels=["redis", "node"]
        )
        limit = GaugeMetricFamily(
            "kvstore_redis_memory_max_bytes", "The Redis maxmemory (0: no limit).", labels=["redis", "node"]
        )
        outbox = GaugeMetricFamily(
            "kvstore_audit_outbox_tenants", "Tenants whose audit outbox holds events not yet recorded."
        )
        return up, used, limit, outbox

    def collect(self) -> Any:
        up, used, limit, outbox = self._families()
        for role, client in self._clients.items():
            try:
                infos = self._infos(client)
                if role == "data":
                    outbox.add_metric([], float(client.scard(AUDIT_OUTBOX_TENANTS)))
            except (RedisError, RedisClusterException, OSError):
                up.add_metric([role, ""], 0)
                continue
            for node, info in infos.items():
                up.add_metric([role, node], 1)
                used.add_metric([role, node], float(info.get("used_memory", 0)))
                limit.add_metric([role, node], float(info.get("maxmemory", 0)))
        yield from (up, used, limit, outbox)


class HeartbeatCollector(Collector):
    """Seconds since the consumer's scheduler and freshest worker last looped."""

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "kvstore_worker_heartbeat_age_seconds",
            "Seconds since the scheduler, and the freshest worker, of this consumer last looped.",
            labels=["loop"],
        )
        beats = heartbeat.current()
        if beats is not None:
            for loop, age in beats.ages().items():
                family.add_metric([loop], age)
        yield family


def liveness() -> tuple[int, dict[str, Any]]:
    """200 while the consumer's scheduler and at least one worker loop; 503 once either is stuck."""
    beats = heartbeat.current()
    if beats is None:
        return 200, {"status": "ok"}
    # Tenths, rounded up: a loop over the limit never shows an age at the limit (2.53 s was shown as 2.5).
    ages = {loop: math.ceil(age * 10) / 10 for loop, age in beats.ages().items()}
    stuck = beats.stuck()
    if stuck:
        return 503, {"status": "stuck", "stuck": stuck, "seconds_since_loop": ages, "limit": beats.stuck_seconds}
    return 200, {"status": "ok", "seconds_since_loop": ages}


def metrics_app(registry: CollectorRegistry) -> Callable[..., Iterable[bytes]]:
    """WSGI: ``/health/live`` (the liveness probe), anything else the Prometheus exposition."""
    exposition = make_wsgi_app(registry)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LIVENESS_PATH:
            status, body = liveness()
            payload = json.dumps(body).encode()
            reason = "OK" if status == 200 else "Service Unavailable"
            start_response(
                f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
            )
            return [payload]
        result: Iterable[bytes] = exposition(environ, start_response)
        return result

    return application


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes are not logged."""


def start_metrics_server(host: str, port: int, settings: Settings | None = None) -> bool:
    """Serve /metrics and /health/live on ``host:port`` from a daemon thread; a busy port is logged, not fatal."""
    if port == 0:
        logger.info("worker metrics server disabled (WORKER_METRICS_PORT=0)")
        return False
    registry = scrape_registry()
    collectors = registry._collector_to_names
    if settings is not None and not any(isinstance(c, RedisMemoryCollector) for c in collectors):
        clients = {"data": create_sync_data_redis(settings), "queue": create_sync_queue_redis(settings)}
        registry.register(RedisMemoryCollector(clients))
    if not any(isinstance(c, HeartbeatCollector) for c in collectors):
        registry.register(HeartbeatCollector())
    try:
        server = make_server(host, port, metrics_app(registry), ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as exc:
        logger.error("worker metrics server could not listen on %s:%d: %s", host, port, exc)
        return False
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    logger.info("worker metrics on http://%s:%d/metrics (liveness: %s)", host, port, LIVENESS_PATH)
    return True
