"""``python -m app.grpc``: the gRPC server on GRPC_HOST:GRPC_PORT (default 0.0.0.0:50051) and its
metrics on GRPC_METRICS_HOST:GRPC_METRICS_PORT (default 9465); SIGINT or SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from app.config import get_settings
from app.grpc.metrics import serve_metrics
from app.grpc.server import GrpcServer
from app.platform.logging import setup_logging, warn_unknown_settings

logger = logging.getLogger("kvstore.grpc")


async def main() -> int:
    settings = get_settings()
    setup_logging(settings)
    warn_unknown_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stop_metrics = (
        serve_metrics(settings.grpc_metrics_host, settings.grpc_metrics_port) if (settings.grpc_metrics_port) else None
    )
    server = GrpcServer(settings)
    try:
        port = await server.start()
        logger.info("gRPC server listening on %s:%d", settings.grpc_host, port)
        await stop.wait()
        logger.info("gRPC server stopping")
    finally:
        await server.stop()
        if stop_metrics is not None:
            stop_metrics()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
