"""`python -m app.grpc` as `make run` starts it: it serves on GRPC_PORT and its metrics on
GRPC_METRICS_PORT, and SIGINT stops it cleanly (exit 0)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.grpc.gen import kvstore_v1_pb2 as pb
from app.grpc.gen import kvstore_v1_pb2_grpc as pb_grpc
from app.platform.embedded_redis import RedisProcess
from tests.support.grpc_calls import auth
from tests.support.paths import REPO
from tests.support.polling import wait_until

pytestmark = pytest.mark.subprocess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_python_m_app_grpc_serves_and_stops_cleanly_on_sigint(
    data_server: RedisProcess, queue_server: RedisProcess, settings, client, tenant
) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "REDIS_URL": settings.redis_url,
        "HUEY_REDIS_URL": settings.huey_redis_url,
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(port),
        "GRPC_METRICS_HOST": "127.0.0.1",
        "GRPC_METRICS_PORT": str(metrics_port),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.grpc"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(service="kvstore.v1.KV"), timeout=1)
                except grpc.aio.AioRpcError:
                    return False
                return answer.status == health_pb2.HealthCheckResponse.SERVING

            await wait_until(serving, timeout=30, what="the gRPC server")
            kv = pb_grpc.KVStub(channel)
            md = auth(tenant["access_token"])
            await kv.Put(pb.PutRequest(key="from-grpc", value=b'"hi"'), metadata=md)
        http = await client.get("/api/v1/kv/from-grpc", headers=tenant["headers"])
        assert http.json()["value"] == "hi"  # the same data as the HTTP API
        async with httpx.AsyncClient() as scraper:
            metrics = (await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="kvstore.v1.KV"' in metrics
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
