"""Prometheus metrics of the API, correct under gunicorn with several workers.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn.conf.py sets and wipes it
before any worker starts), prometheus_client keeps every value in a per-process mmap file there;
``GET /metrics`` builds a fresh ``MultiProcessCollector`` per scrape, so one scrape sums every
worker, and gunicorn's ``child_exit`` hook (gunicorn.conf.py) marks a worker that exits as dead.
Without the variable (``make run``, the tests) the default in-process registry is served.
``GET /metrics`` itself comes from prometheus-fastapi-instrumentator's ``expose()``.

Metrics (label values are route templates and small fixed sets, never a raw path or a tenant id):

- ``http_requests_total{handler,method,status}`` and ``http_request_duration_seconds{handler,method}``:
  recorded by :class:`RequestMetricsMiddleware` (pure ASGI); ``handler`` is the full route template
  (``/api/v1/kv/{key}``), ``none`` for a path that matches no route. The duration runs until the
  response headers are sent, so long watch streams and large downloads do not skew it. /metrics and the
  health probes are not counted (scrapes and probes would drown real traffic).
- ``kvstore_operations_total{operation,status}``: one per storage operation. The KV and object code calls
  ``record_operation("put", "ok")`` or wraps the call in ``with track_operation("put"):`` which records
  ``ok``, the domain error's code (``key_not_found``, ``version_conflict``, ...) or ``error``.
  Operation names: get (a miss is key_not_found), put, delete, patch, list, exists, batch_get, batch_put,
  history, object_put, object_get, ...
- ``kvstore_watch_connections{transport}``: open watch streams (``sse`` or ``websocket``), summed over live
  workers only; call ``watch_connection_opened(transport)`` / ``watch_connection_closed(transport)`` or
  ``with track_watch_connection(transport):``.
- ``kvstore_auth_failures_total{reason}``: refused authentication; ``reason`` is the error code
  (``unauthorized`` for a missing token, ``invalid_token``, ``invalid_credentials``,
  ``refresh_token_reused``, ``login_throttled``). Counted by the error handler in app/platform/http/problems.py.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from app.platform.errors import KVStoreError

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# No `*_created` series (one more per counter and histogram child, which no dashboard reads).
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client ships no annotation here

# Sub-millisecond KV calls up to slow object transfers.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["handler", "method", "status"],
)
# No status label: each label value multiplies the buckets (15 series); the counter has the status.
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from receiving an HTTP request until its response headers are sent, in seconds.",
    ["handler", "method"],
    buckets=LATENCY_BUCKETS,
)
OPERATIONS = Counter(
    "kvstore_operations",
    "Storage operations performed, by operation and outcome.",
    ["operation", "status"],
)
WATCH_CONNECTIONS = Gauge(
    "kvstore_watch_connections",
    "Watch streams currently open, by transport.",
    ["transport"],
    multiprocess_mode="livesum",
)
AUTH_FAILURES = Counter(
    "kvstore_auth_failures",
    "Requests refused by authentication, by reason.",
    ["reason"],
)


def labelled(metric: Any) -> Callable[..., Any]:
    """``metric.labels`` remembered per label values: ``labels()`` validates and locks on every call,
    about as much again as the ``inc()`` it precedes; label values are small fixed sets (see above)."""
    children: dict[tuple[str, ...], Any] = {}

    def child(*values: str) -> Any:
        found = children.get(values)
        if found is None:
            found = children[values] = metric.labels(*values)
        return found

    return child


_operation = labelled(OPERATIONS)


def record_operation(operation: str, status: str = "ok") -> None:
    """Count one storage operation with its outcome (``ok`` or an error code)."""
    _operation(operation, status).inc()


@contextmanager
def track_operation(operation: str) -> Iterator[None]:
    """Count the wrapped operation: ``ok``, the domain error's code, or ``error``."""
    try:
        yield
    except KVStoreError as exc:
        record_operation(operation, exc.code)
        raise
    except Exception:
        record_operation(operation, "error")
        raise
    record_operation(operation, "ok")


def counted(operation: str) -> Callable[[F], F]:
    """Count each call in kvstore_operations_total{operation,status}."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        async def counted_method(*args: Any, **kwargs: Any) -> Any:
            with track_operation(operation):
                return await method(*args, **kwargs)

        return counted_method  # type: ignore[return-value]

    return wrap


def watch_connection_opened(transport: str = "sse") -> None:
    WATCH_CONNECTIONS.labels(transport).inc()


def watch_connection_closed(transport: str = "sse") -> None:
    WATCH_CONNECTIONS.labels(transport).dec()


@contextmanager
def track_watch_connection(transport: str = "sse") -> Iterator[None]:
    """Keep the watch gauge up while the block runs, however it ends."""
    watch_connection_opened(transport)
    try:
        yield
    finally:
        watch_connection_closed(transport)


def auth_failure(reason: str) -> None:
    AUTH_FAILURES.labels(reason).inc()
