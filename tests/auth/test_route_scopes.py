"""Every route makes a scope decision: the app's routes are walked, each must declare its scope
(through its BearerClaims dependency, the watch stream dependency, or ``required_scope`` on a
WebSocket endpoint) and the declaration must be the one in this table. A route added later without
a scope, or with another one, fails here. Then every route is called with an API key that holds
every scope but the route's own: each answers 403 insufficient_scope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from app.auth.deps import BearerClaims, StreamClaimsDependency
from app.config import Settings
from app.main import create_app
from app.platform.http.fastpath import HotRoute
from app.platform.security import ANY_CREDENTIAL, SCOPES, SESSION_ONLY
from tests.support.api_keys import create_key, key_headers
from tests.support.tenants import SECRET_KEY

PUBLIC = "public"  # no credential at all

# (method, path) -> the scope it needs. Every route of the app is here, no other.
SCOPE_TABLE: dict[tuple[str, str], str] = {
    **{
        (method, f"/api/v1{base}{suffix}"): scope
        for base in ("/kv", "/kv/buckets/{bucket}/keys")
        for method, suffix, scope in (
            ("POST", "", "kv:write"),
            ("GET", "", "kv:read"),
            ("POST", "/batch", "kv:write"),
            ("POST", "/batch/get", "kv:read"),
            ("POST", "/batch/delete", "kv:write"),
            ("GET", "/stats/count", "kv:read"),
            ("GET", "/{key}", "kv:read"),
            ("PUT", "/{key}", "kv:write"),
            ("PATCH", "/{key}", "kv:write"),
            ("DELETE", "/{key}", "kv:write"),
            ("GET", "/{key}/exists", "kv:read"),
            ("GET", "/{key}/ttl", "kv:read"),
            ("GET", "/{key}/history", "kv:read"),
            ("POST", "/{key}/increment", "kv:write"),
            ("POST", "/{key}/touch", "kv:write"),
        )
    },
    ("POST", "/api/v1/kv/txn"): "kv:write",
    ("POST", "/api/v1/leases"): "kv:write",
    ("POST", "/api/v1/leases/{lease_id}/keepalive"): "kv:write",
    ("GET", "/api/v1/leases/{lease_id}"): "kv:read",
    ("DELETE", "/api/v1/leases/{lease_id}"): "kv:write",
    ("POST", "/api/v1/locks/{name}"): "kv:write",
    ("DELETE", "/api/v1/locks/{name}"): "kv:write",
    ("GET", "/api/v1/locks/{name}"): "kv:read",
    ("GET", "/api/v1/health/live"): PUBLIC,
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/swagger-ui"): PUBLIC,
    ("GET", "/openapi"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
    # The scope is the one of the method the body asks to sign (objects:read or objects:write), checked
    # in the handler: tests/objects/test_presign_api_keys.py.
    ("POST", "/api/v1/objects/buckets/{bucket}/objects/{name}/presign"): ANY_CREDENTIAL,
    ("GET", "/api/v1/health/ready"): PUBLIC,
    ("GET", "/api/v1/health"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/console"): PUBLIC,  # the web console's static files (app/console)
    ("GET", "/console/"): PUBLIC,
    ("GET", "/console/{name}"): PUBLIC,
    ("POST", "/api/v1/auth/register"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): PUBLIC,  # the refresh token is the credential
    ("POST", "/api/v1/auth/logout-all"): SESSION_ONLY,
    ("POST", "/api/v1/auth/password"): SESSION_ONLY,
    ("GET", "/api/v1/auth/me"): ANY_CREDENTIAL,
    ("POST", "/api/v1/auth/api-keys"): "admin",
    ("GET", "/api/v1/auth/api-keys"): "admin",
    ("DELETE", "/api/v1/auth/api-keys/{key_id}"): "admin",
    # Webhooks (app/webhooks/routes.py): an endpoint receives every change it subscribes to, so admin.
    ("POST", "/api/v1/webhooks"): "admin",
    ("GET", "/api/v1/webhooks"): "admin",
    ("GET", "/api/v1/webhooks/{hook_id}"): "admin",
    ("PATCH", "/api/v1/webhooks/{hook_id}"): "admin",
    ("DELETE", "/api/v1/webhooks/{hook_id}"): "admin",
    ("POST", "/api/v1/webhooks/{hook_id}/test"): "admin",
    ("POST", "/api/v1/webhooks/{hook_id}/rotate-secret"): "admin",
    ("GET", "/api/v1/webhooks/{hook_id}/deliveries"): "admin",
    ("POST", "/api/v1/webhooks/{hook_id}/deliveries/{delivery}/retry"): "admin",
    ("POST", "/api/v1/kv/buckets"): "admin",
    ("POST", "/api/v1/events"): "kv:write",  # a CloudEvent commit; its bucket and key are checked in the handler
    ("GET", "/api/v1/events/stream"): "kv:watch",  # every bucket the credential may use
    ("GET", "/api/v1/kv/buckets"): "kv:read",
    ("GET", "/api/v1/kv/buckets/{bucket}"): "kv:read",
    ("DELETE", "/api/v1/kv/buckets/{bucket}"): "admin",
    ("GET", "/api/v1/kv/buckets/{bucket}/watch"): "kv:watch",
    ("GET", "/api/v1/kv/watch"): "kv:watch",
    ("WS", "/api/v1/kv/watch/{bucket}"): "kv:watch",
    ("GET", "/api/v1/audit"): "audit:read",
    ("GET", "/api/v1/usage"): "usage:read",
    ("POST", "/api/v1/objects/buckets"): "admin",
    ("GET", "/api/v1/objects/buckets"): "objects:read",
    ("DELETE", "/api/v1/objects/buckets/{bucket}"): "admin",
    ("GET", "/api/v1/objects/buckets/{bucket}/objects"): "objects:read",
    ("GET", "/api/v1/objects/buckets/{bucket}/objects/{name}/verify"): "objects:read",
    ("POST", "/api/v1/objects/buckets/{bucket}/objects/{name}/uploads"): "objects:write",
    ("GET", "/api/v1/objects/buckets/{bucket}/objects/{name}/uploads/{upload_id}"): "objects:write",
    (
        "PUT",
        "/api/v1/objects/buckets/{bucket}/objects/{name}/uploads/{upload_id}/parts/{part_number}",
    ): "objects:write",
    ("POST", "/api/v1/objects/buckets/{bucket}/objects/{name}/uploads/{upload_id}/complete"): "objects:write",
    ("DELETE", "/api/v1/objects/buckets/{bucket}/objects/{name}/uploads/{upload_id}"): "objects:write",
    ("PUT", "/api/v1/objects/buckets/{bucket}/objects/{name}"): "objects:write",
    ("GET", "/api/v1/objects/buckets/{bucket}/objects/{name}"): "objects:read",
    ("HEAD", "/api/v1/objects/buckets/{bucket}/objects/{name}"): "objects:read",
    ("DELETE", "/api/v1/objects/buckets/{bucket}/objects/{name}"): "objects:write",
    # Full-text search (app/kv/search_routes.py)
    ("GET", "/api/v1/kv/search"): "kv:read",
    ("PATCH", "/api/v1/kv/buckets/{bucket}"): "admin",
    ("POST", "/api/v1/exports"): "export",
    ("POST", "/api/v1/kv/buckets/{bucket}/restore"): "admin",
    ("GET", "/api/v1/exports/{export_id}"): "export",
    ("GET", "/api/v1/exports/{export_id}/download"): "export",
    ("POST", "/api/v1/imports"): "import",
    ("GET", "/api/v1/imports/{import_id}"): "import",
}


def _walk(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        if isinstance(route, HotRoute):
            continue  # dispatches documented routes (walked here) with their own dependencies
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from _walk(candidates())
        else:
            yield route


def _declared_scopes(dependant: Any) -> set[str]:
    """The scopes the route's dependencies (at any depth) declare."""
    found: set[str] = set()
    call = getattr(dependant, "call", None)
    if isinstance(call, BearerClaims | StreamClaimsDependency):
        found.add(call.scope)
    for sub in getattr(dependant, "dependencies", ()):
        found |= _declared_scopes(sub)
    return found


def declared(application: FastAPI) -> dict[tuple[str, str], str]:
    """(method, path) -> the scope each route of ``application`` declares (PUBLIC: none)."""
    result: dict[tuple[str, str], str] = {}
    for route in _walk(list(application.routes)):
        starlette_route = getattr(route, "starlette_route", None)  # a WebSocket route's has the full path
        path = getattr(route, "path_format", None) or getattr(starlette_route, "path", None) or route.path
        original = getattr(route, "original_route", route)
        endpoint = getattr(original, "endpoint", None)
        methods = set(getattr(route, "methods", None) or ()) or {"WS"}
        if "GET" in methods:
            methods.discard("HEAD")
        dependant = getattr(route, "dependant", None)
        scopes = _declared_scopes(dependant) if dependant is not None else set()
        if getattr(endpoint, "required_scope", None):
            scopes.add(endpoint.required_scope)
        assert len(scopes) <= 1, f"{methods} {path} declares several scopes: {scopes}"
        for method in methods:
            result[(method, path)] = scopes.pop() if scopes else PUBLIC
            scopes = {result[(method, path)]} - {PUBLIC}
    return result


APP = create_app(Settings(environment="test", secret_key=SECRET_KEY, log_level="WARNING"))
DECLARED = declared(APP)


def test_every_route_declares_the_scope_of_the_table() -> None:
    table = SCOPE_TABLE
    missing = sorted(set(DECLARED) - set(table))
    assert not missing, f"routes without an entry in SCOPE_TABLE (give them a scope): {missing}"
    assert not sorted(set(table) - set(DECLARED)), "SCOPE_TABLE names routes the app does not have"
    wrong = {key: (DECLARED[key], table[key]) for key in table if DECLARED[key] != table[key]}
    assert not wrong, f"declared vs expected: {wrong}"


def test_every_scope_is_used_and_only_known_scopes() -> None:
    used = set(SCOPE_TABLE.values()) - {PUBLIC, ANY_CREDENTIAL, SESSION_ONLY}
    assert used == set(SCOPES)


PATH_VALUES = {
    "{bucket}": "b1",
    "{key}": "k",
    "{name}": "n",
    "{upload_id}": "u",
    "{part_number}": "1",
    "{key_id}": "0000000000000000",
}


def _concrete(path: str) -> str:
    for template, value in PATH_VALUES.items():
        path = path.replace(template, value)
    return path


HTTP_SCOPED = sorted(
    (key, scope) for key, scope in SCOPE_TABLE.items() if key[0] != "WS" and scope not in (PUBLIC, ANY_CREDENTIAL)
)


@pytest.mark.parametrize(("route", "scope"), HTTP_SCOPED, ids=[f"{m} {p}" for (m, p), _ in HTTP_SCOPED])
async def test_a_key_without_the_routes_scope_gets_403(client, tenant, route, scope) -> None:
    method, path = route
    held = [s for s in SCOPES if s != scope]
    key = await create_key(client, tenant["headers"], scopes=held)
    kwargs: dict[str, Any] = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    response = await client.request(method, _concrete(path), headers=key_headers(key), **kwargs)
    assert response.status_code == 403, response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    if method != "HEAD":
        assert response.json()["code"] == "insufficient_scope"
    # the same request with a key that holds the scope is not refused for its scope (a watch would
    # open a stream: tests/watch/test_api_key_watch.py covers those)
    if scope in SCOPES and not path.endswith(("/watch", "/events/stream")):
        allowed = await create_key(client, tenant["headers"], scopes=[scope])
        again = await client.request(method, _concrete(path), headers=key_headers(allowed), **kwargs)
        assert again.status_code != 403, again.text
