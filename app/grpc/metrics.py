"""Prometheus metrics of the gRPC server, with the names grpc-ecosystem's interceptors use:

- ``grpc_server_started_total{grpc_service,grpc_method,grpc_type}``: calls started;
- ``grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}``: calls ended, by status
  code (OK, NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ...);
- ``grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}``: time to the status.

They live in the process's default registry, beside the service metrics the shared code counts
(``kvstore_operations_total``, ``kvstore_watch_connections{transport="grpc"}``, ...), and are served on
``GRPC_METRICS_HOST:GRPC_METRICS_PORT`` (default 0.0.0.0:9465; 0 turns the server off) by
:func:`serve_metrics`, as the worker serves its own on 9464.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server

STARTED = Counter(
    "grpc_server_started",
    "gRPC calls started on the server, by service, method and type.",
    ["grpc_service", "grpc_method", "grpc_type"],
)
HANDLED = Counter(
    "grpc_server_handled",
    "gRPC calls completed on the server, by service, method, type and status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of a gRPC call to its status, in seconds (a stream: its whole life).",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0),
)


def serve_metrics(host: str, port: int) -> Callable[[], None]:
    """Serve GET /metrics of the default registry on ``host:port`` in a thread; returns its stop."""
    server, thread = start_http_server(port, host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop


__all__ = ["HANDLED", "HANDLING_SECONDS", "STARTED", "serve_metrics"]
