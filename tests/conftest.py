"""Fixtures shared by every folder: real redis-server processes for the whole session (data, queue
and a Redis Cluster), a clean state per test, the app and an async httpx client over it, a registered
tenant, a sync client of the data Redis (and a look at the objects stored there), and the worker's
task code bound to the test's Redis.
Helpers (plain functions and classes) live in tests/support."""

from __future__ import annotations

import os

from tests.support.tenants import SECRET_KEY

# Before the app's modules: app.main builds an app from the environment when it is imported.
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("SECRET_KEY", SECRET_KEY)
# The suite registers and logs in from one address far more often than a person would: the budget of
# anonymous /auth requests per address is off, except in the tests of it (tests/auth/test_auth_rate_limit.py).
os.environ.setdefault("AUTH_RATE_LIMIT_PER_MINUTE", "0")

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from app.config import Settings
from app.main import create_app
from app.platform import jobs
from app.platform.embedded_redis import (
    LocalRedisCluster,
    RedisProcess,
    RedisServerNotFound,
    find_redis_server,
)
from app.platform.redis import SyncDataRedis, create_sync_data_redis
from tests.support.apps import asgi_client
from tests.support.objects import Store
from tests.support.route_contexts import share_route_contexts
from tests.support.settings import cached_settings
from tests.support.tenants import bearer, register


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
    share_route_contexts()  # every test builds a fresh app: analyse each route once, not once per app


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `contract` run twice: on a single data Redis and on a Redis Cluster. The cluster
    leg is marked `cluster`, so `make test-fast` can leave it (and the cluster's start) out."""
    if "backend" in metafunc.fixturenames:
        backends = ["single", "cluster"] if metafunc.definition.get_closest_marker("contract") else ["single"]
        if metafunc.definition.get_closest_marker("cluster_only"):
            backends = ["cluster"]
        params = [pytest.param(b, marks=pytest.mark.cluster) if b == "cluster" else b for b in backends]
        metafunc.parametrize("backend", params, scope="session")


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
    return cached_settings(data_url, queue_server.url).model_copy()  # a copy: a test may change its own


@pytest.fixture
async def app(settings: Settings):  # type: ignore[no-untyped-def]
    application = create_app(settings)
    # The app's own start-up and shutdown, as uvicorn runs them (ASGITransport does not).
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with asgi_client(app) as http:
        yield http


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> dict:
    """A registered tenant: its tenant_id, tokens and ready-made auth headers."""
    body = await register(client)
    body["headers"] = bearer(body)
    return body


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[SyncDataRedis]:
    """A sync client of the test's data Redis (single server or cluster), for inspecting storage."""
    client = create_sync_data_redis(settings)
    yield client
    client.close()


@pytest.fixture
def worker_settings(settings: Settings) -> Iterator[Settings]:
    """Task code in this process uses the test's data Redis; back to the process settings afterwards."""
    jobs.configure(settings)
    try:
        yield settings
    finally:
        jobs.configure(None)


@pytest.fixture
def immediate(worker_settings: Settings) -> Iterator[Settings]:
    """Tasks the API enqueues run inline (``huey_immediate``) against the test's data Redis."""
    worker_settings.huey_immediate = True
    try:
        yield worker_settings
    finally:
        worker_settings.huey_immediate = False


@pytest.fixture
def store(sync_redis: SyncDataRedis, settings: Settings) -> Store:
    """What the data Redis holds for a tenant's objects, and the garbage collector run by hand."""
    return Store(sync_redis, settings)
