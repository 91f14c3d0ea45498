"""Request and domain metrics in one process: names, labels (route templates, never raw paths or
tenant ids), what is excluded, and the exposition format."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware.base import BaseHTTPMiddleware

from app.platform.errors import KeyNotFound
from app.platform.metrics import (
    record_operation,
    track_operation,
    track_watch_connection,
    watch_connection_closed,
    watch_connection_opened,
)
from tests.support.apps import app_client
from tests.support.tenants import PASSWORD


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def add_probe_routes(app: FastAPI) -> None:
    """A templated route in an included router (as every API route is) and one that crashes."""
    router = APIRouter()

    @router.get("/ops-probe/{item}")
    async def probe(item: str) -> dict[str, str]:
        return {"item": item}

    @router.get("/ops-crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    app.include_router(router, prefix="/api/v1")


async def scrape(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


async def test_exposition_parses_with_every_kvstore_metric_typed_and_documented(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/auth/me")  # one counted request and one auth failure
    record_operation("get", "ok")
    with track_watch_connection("sse"):
        families = await scrape(client)
    expected = {
        "http_requests": "counter",
        "http_request_duration_seconds": "histogram",
        "kvstore_operations": "counter",
        "kvstore_watch_connections": "gauge",
        "kvstore_auth_failures": "counter",
    }
    for name, kind in expected.items():
        assert name in families, f"{name} missing from /metrics"
        assert families[name].type == kind
        assert families[name].documentation.endswith(".")
    sample_names = {sample.name for family in families.values() for sample in family.samples}
    assert {"http_requests_total", "kvstore_operations_total", "kvstore_auth_failures_total"} <= sample_names
    assert "http_request_duration_seconds_bucket" in sample_names
    # The histogram has no status label (the counter has), and no series is a *_created one.
    durations = families["http_request_duration_seconds"].samples
    assert all("status" not in sample.labels for sample in durations)
    assert not [name for name in sample_names if name.endswith("_created")]


async def test_requests_are_labelled_by_route_template_never_raw_path_or_tenant(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict
) -> None:
    add_probe_routes(app)
    template = "/api/v1/ops-probe/{item}"
    before = value("http_requests_total", handler=template, method="GET", status="200")
    before_none = value("http_requests_total", handler="none", method="GET", status="404")
    secret_path_part = f"tenant-{tenant['tenant_id']}"
    for _ in range(3):
        response = await client.get(f"/api/v1/ops-probe/{secret_path_part}", headers=tenant["headers"])
        assert response.status_code == 200
    assert (await client.get(f"/no/such/{secret_path_part}")).status_code == 404

    assert value("http_requests_total", handler=template, method="GET", status="200") == before + 3
    assert value("http_request_duration_seconds_count", handler=template, method="GET") >= 3
    assert value("http_requests_total", handler="none", method="GET", status="404") == before_none + 1
    exposition = (await client.get("/metrics")).text
    assert tenant["tenant_id"] not in exposition
    assert "/no/such" not in exposition


async def test_unhandled_error_is_counted_as_500(app: FastAPI, client: httpx.AsyncClient) -> None:
    add_probe_routes(app)
    before = value("http_requests_total", handler="/api/v1/ops-crash", method="GET", status="500")
    response = await client.get("/api/v1/ops-crash")
    assert response.status_code == 500
    assert value("http_requests_total", handler="/api/v1/ops-crash", method="GET", status="500") == before + 1


async def test_health_probes_and_scrapes_are_not_counted(client: httpx.AsyncClient) -> None:
    paths = ["/metrics", "/health", "/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready"]
    before = {path: value("http_requests_total", handler=path, method="GET", status="200") for path in paths}
    for path in paths:
        assert (await client.get(path)).status_code == 200
    assert {path: value("http_requests_total", handler=path, method="GET", status="200") for path in paths} == before


async def test_docs_routes_are_labelled_by_their_path(client: httpx.AsyncClient) -> None:
    """/docs is a plain Starlette route: FastAPI records no route context for it."""
    before = value("http_requests_total", handler="/docs", method="GET", status="200")
    assert (await client.get("/docs")).status_code == 200
    assert value("http_requests_total", handler="/docs", method="GET", status="200") == before + 1


async def test_unknown_methods_share_one_label_value(client: httpx.AsyncClient) -> None:
    before = value("http_requests_total", handler="/api/v1/auth/me", method="other", status="405")
    for method in ("BREW", "WHEN", "PROPFIND"):
        assert (await client.request(method, "/api/v1/auth/me")).status_code == 405
    assert value("http_requests_total", handler="/api/v1/auth/me", method="other", status="405") == before + 3


async def test_auth_failures_are_counted_by_reason(client: httpx.AsyncClient, tenant: dict) -> None:
    reasons = ["unauthorized", "invalid_token", "invalid_credentials", "login_throttled"]
    before = {reason: value("kvstore_auth_failures_total", reason=reason) for reason in reasons}

    assert (await client.get("/api/v1/auth/me")).status_code == 401
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert (await client.get("/api/v1/auth/me", headers=bad)).status_code == 401
    wrong = {"username": "alice", "password": PASSWORD + "x"}
    statuses = [(await client.post("/api/v1/auth/login", json=wrong)).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert (await client.get("/api/v1/auth/me", headers=tenant["headers"])).status_code == 200

    after = {reason: value("kvstore_auth_failures_total", reason=reason) for reason in reasons}
    assert {reason: after[reason] - before[reason] for reason in reasons} == {
        "unauthorized": 1,
        "invalid_token": 1,
        "invalid_credentials": 5,
        "login_throttled": 1,
    }


def test_track_operation_records_ok_domain_code_or_error() -> None:
    def count(status: str) -> float:
        return value("kvstore_operations_total", operation="ops-test", status=status)

    before = {status: count(status) for status in ("ok", "key_not_found", "error")}
    with track_operation("ops-test"):
        pass
    with pytest.raises(KeyNotFound), track_operation("ops-test"):
        raise KeyNotFound("gone")
    with pytest.raises(RuntimeError), track_operation("ops-test"):
        raise RuntimeError("bug")
    assert {status: count(status) - before[status] for status in before} == {"ok": 1, "key_not_found": 1, "error": 1}


async def test_watch_gauge_goes_up_and_back_down() -> None:
    before = value("kvstore_watch_connections", transport="websocket")
    watch_connection_opened("websocket")
    with track_watch_connection("websocket"):
        assert value("kvstore_watch_connections", transport="websocket") == before + 2
    watch_connection_closed("websocket")
    assert value("kvstore_watch_connections", transport="websocket") == before
    with pytest.raises(ConnectionError), track_watch_connection("websocket"):
        raise ConnectionError("client went away")
    assert value("kvstore_watch_connections", transport="websocket") == before


def test_every_middleware_is_pure_asgi(app: FastAPI) -> None:
    """BaseHTTPMiddleware buffers streaming and costs a task per request; none is allowed."""
    assert app.user_middleware, "the app has no middleware at all?"
    for middleware in app.user_middleware:
        assert not (isinstance(middleware.cls, type) and issubclass(middleware.cls, BaseHTTPMiddleware)), middleware


async def test_enable_metrics_false_serves_no_metrics(settings) -> None:
    async with app_client(settings.model_copy(update={"enable_metrics": False})) as http:
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/api/v1/health/live")).status_code == 200
        assert "/metrics" not in (await http.get("/openapi.json")).json()["paths"]
