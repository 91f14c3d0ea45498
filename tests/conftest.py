"""Real redis-server processes for the whole session (data and queue), a clean state per test,
and an async httpx client over the ASGI app."""

from __future__ import annotations

import os

os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.platform.embedded_redis import (
    LocalRedisCluster,
    RedisProcess,
    RedisServerNotFound,
    find_redis_server,
)

PASSWORD = "Secret123"


@pytest.fixture(scope="session")
def redis_binary() -> str:
    try:
        return find_redis_server()
    except RedisServerNotFound as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def data_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis-data")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def queue_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis-queue"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "contract: runs against a single data Redis and against a 3-master Redis Cluster"
    )
    config.addinivalue_line("markers", "cluster_only: runs against the 3-master Redis Cluster only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `contract` run twice: on a single data Redis and on a Redis Cluster."""
    if "backend" in metafunc.fixturenames:
        backends = ["single", "cluster"] if metafunc.definition.get_closest_marker("contract") else ["single"]
        if metafunc.definition.get_closest_marker("cluster_only"):
            backends = ["cluster"]
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture
def data_url(backend: str, request: pytest.FixtureRequest) -> str:
    """URL of a clean data Redis of the test's backend (a cluster seed for `cluster`)."""
    if backend == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("cluster_server")
        cluster.flushall()
        return cluster.url
    server: RedisProcess = request.getfixturevalue("data_server")
    client = redis.Redis(port=server.port)
    client.flushall()
    client.close()
    return server.url


@pytest.fixture
def settings(data_url: str, queue_server: RedisProcess) -> Settings:
    client = redis.Redis(port=queue_server.port)
    client.flushall()
    client.close()
    return Settings(
        environment="test",
        secret_key=os.environ["SECRET_KEY"],
        redis_url=data_url,
        huey_redis_url=queue_server.url,
        bcrypt_rounds=4,
        log_level="WARNING",
    )


@pytest.fixture
async def app(settings: Settings):  # type: ignore[no-untyped-def]
    application = create_app(settings)
    # The app's own start-up and shutdown, as uvicorn runs them (ASGITransport does not).
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@asynccontextmanager
async def serve(application: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built in the test (own settings, extra routes), run with its lifespan."""
    transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 40000))
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


async def register(client: httpx.AsyncClient, username: str = "alice", email: str | None = None) -> dict:
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": email or f"{username}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> dict:
    """A registered tenant: its tenant_id, tokens and ready-made auth headers."""
    body = await register(client)
    body["headers"] = {"Authorization": f"Bearer {body['access_token']}"}
    return body
