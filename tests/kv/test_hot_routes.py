"""GET and PUT of one flat key are matched first (app/platform/http/fastpath.py hot_router): copies of
the documented routes, in a router of their own, undocumented, answering exactly as the originals."""

from __future__ import annotations

from fastapi.routing import APIRoute

from app.kv import flat_routes
from app.main import create_app
from tests.support.tenants import bearer, register


def test_the_hot_routes_are_undocumented_twins_of_the_documented_ones() -> None:
    hot = [route for route in flat_routes.hot_router.routes if isinstance(route, APIRoute)]
    documented = {
        (route.path, frozenset(route.methods)): route
        for route in flat_routes.router.routes
        if isinstance(route, APIRoute) and getattr(route, "fast_path", False)
    }
    assert sorted((route.path, sorted(route.methods)) for route in hot) == [
        ("/kv/{key:flatkey}", ["GET"]),
        ("/kv/{key:flatkey}", ["PUT"]),
    ]
    for route in hot:
        twin = documented[(route.path, frozenset(route.methods))]
        assert not route.include_in_schema and twin.include_in_schema
        assert route.endpoint is twin.endpoint and type(route) is type(twin)


def test_the_schema_documents_each_key_operation_once() -> None:
    paths = create_app().openapi()["paths"]
    operations = paths["/api/v1/kv/{key}"]
    assert {operations["get"]["operationId"], operations["put"]["operationId"]} == {"kv_get", "kv_put"}


async def test_a_key_written_and_read_through_the_hot_routes(client) -> None:  # type: ignore[no-untyped-def]
    headers = bearer(await register(client))
    put = await client.put("/api/v1/kv/colour", json={"value": "red"}, headers=headers)
    assert put.status_code == 201 and put.json()["metadata"]["version"] == 1
    got = await client.get("/api/v1/kv/colour", headers=headers)
    assert got.status_code == 200 and got.json()["value"] == "red" and got.headers["etag"] == '"1"'
    assert (await client.post("/api/v1/kv/colour", headers=headers)).status_code == 405  # as before
