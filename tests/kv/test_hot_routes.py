"""GET and PUT of one flat key are matched first (app/platform/http/fastpath.py HotRoute): one route at the
head of the app's route list, matching with the regex of the documented route, handing on the same
scope FastAPI's own routing would, answering exactly as the documented routes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Match

from app.main import create_app
from app.platform.http.fastpath import HotRoute
from tests.support.tenants import bearer, register

APP = create_app()
HOT = [route for route in APP.router.routes if isinstance(route, HotRoute)]
PATHS = st.one_of(
    st.sampled_from(
        [
            "/api/v1/kv/k",
            "/api/v1/kv/buckets",
            "/api/v1/kv/watch",
            "/api/v1/kv/search",
            "/api/v1/kv/watchers",
            "/api/v1/kv/a/b",
            "/api/v1/kv/",
            "/api/v1/kv",
            "/api/v1/kv/buckets/b/keys/k",
            "/api/v1/kv/%2F",
            "/api/v1/kv/\x00",
            "/api/v1/kv/\ud800",
            "/kv/k",
        ]
    ),
    st.builds(lambda key: f"/api/v1/kv/{key}", st.text(min_size=0, max_size=8)),
)
METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"])


def http_scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "app": APP, "headers": []}


def routed_by_fastapi(scope: dict[str, Any]) -> tuple[APIRoute, dict[str, Any], str] | None:
    """The route, path parameters and template FastAPI's routers pick for ``scope`` without the hot
    routes (the first full match among the app's other routes, as its router walks them)."""
    for route in APP.router.routes:
        if isinstance(route, HotRoute):
            continue
        contexts = getattr(route, "effective_route_contexts", None)
        candidates = list(contexts()) if contexts else []
        for context in candidates:
            match, child = context.matches(dict(scope))
            if match is Match.FULL:
                return context.original_route, child["path_params"], context.path_format
        if not candidates:
            match, child = route.matches(dict(scope))
            if match is Match.FULL:
                return route, child.get("path_params", {}), getattr(route, "path", "")
    return None


def test_the_hot_routes_stand_first_and_cover_get_and_put_of_a_flat_key() -> None:
    assert APP.router.routes[0] is HOT[0] and len(HOT) == 1
    (hot,) = HOT
    assert hot.path_format == "/api/v1/kv/{key}"
    scope = http_scope("GET", "/api/v1/kv/k")
    assert hot.matches(scope)[0] is Match.FULL
    assert hot.matches(http_scope("PUT", "/api/v1/kv/k"))[0] is Match.FULL
    assert hot.matches(http_scope("DELETE", "/api/v1/kv/k"))[0] is Match.NONE
    assert hot.matches({"type": "websocket", "path": "/api/v1/kv/k"})[0] is Match.NONE


@settings(max_examples=300, deadline=None)
@given(method=METHODS, path=PATHS)
def test_a_hot_route_picks_what_fastapi_would_with_the_same_scope(method: str, path: str) -> None:
    """For any method and path: the hot route matches only where FastAPI's routers choose the
    documented GET or PUT of a flat key, and then hands on that route, its parameters and template."""
    (hot,) = HOT
    scope = http_scope(method, path)
    match, child = hot.matches(dict(scope))
    chosen = routed_by_fastapi(scope)
    documented = chosen is not None and getattr(chosen[0], "fast_path", False) and chosen[2] == hot.path_format
    if not documented:
        assert match is Match.NONE
        return
    assert chosen is not None
    assert match is Match.FULL
    assert child["route"] is chosen[0] and child["path_params"] == chosen[1]
    assert child["endpoint"] is chosen[0].endpoint
    assert child["fastapi"]["effective_route_context"].path_format == chosen[2]


def test_the_schema_documents_each_key_operation_once() -> None:
    paths = APP.openapi()["paths"]
    operations = paths["/api/v1/kv/{key}"]
    assert {operations["get"]["operationId"], operations["put"]["operationId"]} == {"kv_get", "kv_put"}
    assert not any(isinstance(route, HotRoute) for route in APP.routes if getattr(route, "include_in_schema", False))


async def test_a_key_written_and_read_through_the_hot_routes(client) -> None:  # type: ignore[no-untyped-def]
    headers = bearer(await register(client))
    put = await client.put("/api/v1/kv/colour", json={"value": "red"}, headers=headers)
    assert put.status_code == 201 and put.json()["metadata"]["version"] == 1
    got = await client.get("/api/v1/kv/colour", headers=headers)
    assert got.status_code == 200 and got.json()["value"] == "red" and got.headers["etag"] == '"1"'
    assert (await client.post("/api/v1/kv/colour", headers=headers)).status_code == 405  # as before


@pytest.mark.parametrize("fast_paths", [True, False])
async def test_the_middleware_sees_the_documented_route(app, client, fast_paths: bool) -> None:  # type: ignore[no-untyped-def]
    """The access log's template, the metrics' handler label and the audit action come from the scope
    the hot route hands on: the same as FastAPI's routing gives the documented route."""
    from app.platform.http.middleware import route_template

    headers = bearer(await register(client))  # (the app has built its middleware stack)
    seen: list[tuple[str | None, str]] = []
    app.state.settings = app.state.settings.model_copy(update={"kv_fast_paths": fast_paths})
    inner = app.middleware_stack

    async def spy(scope, receive, send):  # type: ignore[no-untyped-def]
        await inner(scope, receive, send)
        if scope["type"] == "http":
            seen.append((route_template(scope), scope["route"].name))

    app.middleware_stack = spy
    assert (await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)).status_code == 201
    assert (await client.get("/api/v1/kv/k", headers=headers)).status_code == 200
    assert seen[-2:] == [("/api/v1/kv/{key}", "put_key"), ("/api/v1/kv/{key}", "get_key")]
