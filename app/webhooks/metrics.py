"""Prometheus metrics of webhook delivery, on the worker's registry (app/worker/metrics.py registers them):

- ``kvstore_webhook_deliveries_total{result}``: delivery attempts by result (``delivered``, ``failed``: a
  non-2xx answer, ``timeout``, ``error``: connection refused/reset, TLS, ``refused``: the URL failed the
  outbound safety check).
- ``kvstore_webhook_delivery_seconds``: how long an attempt took.
- ``kvstore_webhook_backlog{tenant,webhook}``: deliveries waiting per endpoint, as seen by the last round.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DELIVERIES = Counter("kvstore_webhook_deliveries", "Webhook delivery attempts, by result.", ["result"], registry=None)
LATENCY = Histogram(
    "kvstore_webhook_delivery_seconds",
    "Duration of webhook delivery attempts, in seconds.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=None,
)
BACKLOG = Gauge(
    "kvstore_webhook_backlog",
    "Deliveries waiting per webhook endpoint.",
    ["tenant", "webhook"],
    multiprocess_mode="livemax",
    registry=None,
)


def register(registry: CollectorRegistry) -> None:
    for metric in (DELIVERIES, LATENCY, BACKLOG):
        registry.register(metric)


def attempted(result: str, seconds: float) -> None:
    DELIVERIES.labels(result).inc()
    LATENCY.observe(seconds)


def backlog(tenant_id: str, hook_id: str, queued: int) -> None:
    BACKLOG.labels(tenant_id, hook_id).set(queued)
