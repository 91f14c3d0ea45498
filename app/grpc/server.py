"""The gRPC server (grpcio's asyncio server) of ``python -m app.grpc``: ``kvstore.v1.KV``, the Go
store's ``kvstore.KvStore``, ``grpc.health.v1.Health`` and server reflection, over the services
app/composition.py builds (the same ones the HTTP API runs on).

Health: the service ``""`` is SERVING while the process runs (liveness); ``kvstore.v1.KV`` and
``kvstore.KvStore`` are SERVING while the data Redis answers (readiness: Kubernetes' grpc probe asks
for ``kvstore.v1.KV``), checked every HEALTH_INTERVAL_SECONDS; everything is NOT_SERVING once the
server stops.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from types import SimpleNamespace
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from app.composition import build_services, close_services, start_services
from app.config import Settings
from app.grpc.calls import lenient_parser
from app.grpc.compat import KvStoreServicer
from app.grpc.gen import kvstore_pb2, kvstore_v1_pb2
from app.grpc.kv_api import KVServicer
from app.platform.redis import REDIS_ERRORS

logger = logging.getLogger("kvstore.grpc")

KV_SERVICE = kvstore_v1_pb2.DESCRIPTOR.services_by_name["KV"].full_name
COMPAT_SERVICE = kvstore_pb2.DESCRIPTOR.services_by_name["KvStore"].full_name
SERVICES = (KV_SERVICE, COMPAT_SERVICE)
HEALTH_INTERVAL_SECONDS = 5.0


def add_service(server: aio.Server, servicer: Any, module: Any, name: str) -> None:
    """The service ``name`` of the generated ``module`` served by ``servicer``, as the generated
    ``add_<name>Servicer_to_server`` does, except that a request that does not parse reaches the
    servicer as :class:`~app.grpc.calls.Malformed` (INVALID_ARGUMENT) instead of failing in grpc (UNKNOWN)."""
    service = module.DESCRIPTOR.services_by_name[name]
    handlers = {}
    for method in service.methods:
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=lenient_parser(getattr(module, method.input_type.name)),
            response_serializer=getattr(module, method.output_type.name).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


class GrpcServer:
    """The server and the services it runs on; ``start()`` then ``stop()`` (tests start it on port 0)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = SimpleNamespace()
        build_services(self.state, settings)
        # Messages as large as the HTTP API's largest request body (batches).
        limit = settings.max_request_body_bytes
        self.server = aio.server(
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
        )
        add_service(self.server, KVServicer(self.state), kvstore_v1_pb2, "KV")
        add_service(self.server, KvStoreServicer(self.state), kvstore_pb2, "KvStore")
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        self.port = 0
        self._health_task: asyncio.Task[None] | None = None

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Connect to Redis, listen (port 0: a free one) and serve; returns the port."""
        await start_services(self.state)
        host = self.settings.grpc_host if host is None else host
        port = self.settings.grpc_port if port is None else port
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self.server.add_insecure_port(address)
        await self.server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._check_storage()
        self._health_task = asyncio.create_task(self._follow_storage())
        return self.port

    async def _check_storage(self) -> None:
        try:
            await self.state.data_redis.ping()
            status = health_pb2.HealthCheckResponse.SERVING
        except REDIS_ERRORS:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        for service in SERVICES:
            await self.health.set(service, status)

    async def _follow_storage(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_SECONDS)
            await self._check_storage()

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, watch streams ended (each told where to resume), running calls given
        ``grace`` seconds, then the services closed."""
        if self._health_task is not None:
            self._health_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._health_task
        await self.health.enter_graceful_shutdown()
        self.state.watch.hub.begin_shutdown()
        await self.server.stop(self.settings.grpc_shutdown_grace_seconds if grace is None else grace)
        await close_services(self.state)
