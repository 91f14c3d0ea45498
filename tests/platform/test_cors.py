"""CORS_ORIGINS: preflights for every method and header the API takes, every response header the API
sends exposed, error responses (401, 403, 413, 429, 500) with the CORS headers too, nothing at all
when the setting is empty, and the setting checked at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings, parse_origins
from app.platform.http.cors import EXPOSED_HEADERS, REQUEST_HEADERS
from tests.support.apps import app_client
from tests.support.presign import presigned_url, with_query
from tests.support.tenants import bearer, register

PAGE = "http://page.example:8080"
OTHER = "https://evil.example"
OBJECTS = "/api/v1/objects/buckets"
# Response headers a browser page may read without being exposed (the CORS-safelisted ones), and
# those that are no business of a page (CORS itself, the connection).
SAFELISTED = {
    "cache-control",
    "content-language",
    "content-length",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
}
NOT_FOR_PAGES = {"date", "server", "vary", "x-accel-buffering", "connection", "transfer-encoding"}


@pytest.fixture
def cors_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"cors_origins": f"{PAGE}, http://localhost:5173"})


def preflight(method: str, headers: str = "", origin: str = PAGE) -> dict[str, str]:
    request = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request["Access-Control-Request-Headers"] = headers
    return request


def exposed(response) -> set[str]:  # type: ignore[no-untyped-def]
    return {name.strip().lower() for name in response.headers.get("access-control-expose-headers", "").split(",")}


async def test_without_cors_origins_there_are_no_cors_headers(client, tenant) -> None:
    response = await client.get("/api/v1/auth/me", headers={**tenant["headers"], "Origin": PAGE})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("access-control-")]
    options = await client.options("/api/v1/kv/a", headers=preflight("PUT", "authorization"))
    assert options.status_code == 405  # as the routes answer OPTIONS
    assert "access-control-allow-origin" not in options.headers


async def test_preflight_allows_every_method_and_header_the_api_takes(cors_settings) -> None:
    async with app_client(cors_settings) as http:
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            headers = ", ".join([*REQUEST_HEADERS, "X-Object-Meta-Owner", "x-object-meta-a.b"])
            response = await http.options(f"{OBJECTS}/b/objects/a", headers=preflight(method, headers))
            assert response.status_code == 200, (method, response.text)
            assert response.headers["access-control-allow-origin"] == PAGE
            assert method in response.headers["access-control-allow-methods"]
            allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
            assert {h.lower() for h in REQUEST_HEADERS} | {"x-object-meta-owner", "x-object-meta-a.b"} <= allowed
            assert int(response.headers["access-control-max-age"]) == 600
            assert "x-request-id" not in response.headers  # answered before the app: nothing else ran
        only_meta = await http.options("/api/v1/kv/a", headers=preflight("PUT", "x-object-meta-z"))
        assert only_meta.status_code == 200
        assert "x-object-meta-z" in only_meta.headers["access-control-allow-headers"]
        for refused in (
            preflight("PUT", "authorization", origin=OTHER),
            preflight("PUT", "x-unknown-header"),
            preflight("PUT", "x-object-meta-ok, x-unknown"),
            preflight("CONNECT"),
        ):
            response = await http.options("/api/v1/kv/a", headers=refused)
            assert response.status_code == 400, refused
            assert response.headers.get("access-control-allow-origin") != OTHER


async def test_responses_expose_every_header_the_api_sends(cors_settings) -> None:
    settings = cors_settings.model_copy(update={"rate_limit_per_second": 1.0, "rate_limit_burst": 12})
    async with app_client(settings) as http:
        alice = await register(http, "alice")
        headers = {**bearer(alice), "Origin": PAGE}
        responses = [
            await http.put("/api/v1/kv/k", json={"value": 1}, headers=headers),
            await http.get("/api/v1/kv/k", headers=headers),
            await http.post(OBJECTS, json={"name": "b"}, headers=headers),
            await http.put(
                f"{OBJECTS}/b/objects/o",
                content=b"0123456789",
                headers={**headers, "X-Object-Description": "d", "X-Object-Meta-Owner": "me"},
            ),
            await http.get(f"{OBJECTS}/b/objects/o", headers={**headers, "Range": "bytes=2-5"}),
            await http.get("/api/v1/auth/me", headers={"Origin": PAGE}),  # 401 with WWW-Authenticate
        ]
        while (last := await http.get("/api/v1/kv/k", headers=headers)).status_code != 429:
            pass
        responses.append(last)  # Retry-After
    sent = {name.lower() for response in responses for name in response.headers}
    for required in ("etag", "content-range", "retry-after", "ratelimit-limit", "ratelimit-remaining", "x-request-id"):
        assert required in sent, required
    for response in responses:
        assert response.headers["access-control-allow-origin"] == PAGE, response.status_code
        names = exposed(response)
        assert "*" in names  # X-Object-Meta-<name> too, for requests without credentials
        unexposed = {
            name.lower()
            for name in response.headers
            if not name.lower().startswith(("access-control-", "x-object-meta-"))
            and name.lower() not in SAFELISTED | NOT_FOR_PAGES | names
        }
        assert not unexposed, f"{response.request.method} {response.request.url.path}: {unexposed}"
    assert {h.lower() for h in EXPOSED_HEADERS} >= {
        "etag",
        "content-range",
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-request-id",
        "accept-ranges",
        "content-length",
        "last-modified",
    }


async def test_error_responses_carry_cors_headers(cors_settings) -> None:
    settings = cors_settings.model_copy(update={"max_small_request_body_bytes": 1024})
    async with app_client(settings) as http:
        alice = await register(http, "alice")
        await http.post(OBJECTS, json={"name": "b"}, headers=bearer(alice))
        url = await presigned_url(http, bearer(alice), "o", bucket="b")
        origin = {"Origin": PAGE}
        errors = [
            (await http.get("/api/v1/kv/k", headers=origin), 401),
            (await http.get(with_query(url, signature="0" * 64), headers=origin), 403),
            (await http.get(url, headers=origin), 404),
            (await http.post(OBJECTS, content=b"x" * 5000, headers={**origin, **bearer(alice)}), 413),
            (await http.post(OBJECTS, content=b"x", headers={**origin, **bearer(alice), "Content-Type": "a/b"}), 415),
        ]
        for response, status in errors:
            assert response.status_code == status, response.text
            assert response.headers["access-control-allow-origin"] == PAGE, status
            assert response.headers["content-type"] == "application/problem+json"
        foreign = await http.get("/api/v1/kv/k", headers={"Origin": OTHER})
        assert "access-control-allow-origin" not in foreign.headers


async def test_throttled_responses_carry_cors_headers(cors_settings) -> None:
    settings = cors_settings.model_copy(update={"auth_rate_limit_per_minute": 1.0, "auth_rate_limit_burst": 1})
    async with app_client(settings) as http:
        body = {"username": "nobody", "password": "Secret123"}
        statuses = []
        for _ in range(3):
            response = await http.post("/api/v1/auth/login", json=body, headers={"Origin": PAGE})
            statuses.append(response.status_code)
            assert response.headers["access-control-allow-origin"] == PAGE
        assert statuses[-1] == 429, statuses


async def test_wildcard_origin_answers_any_page(settings) -> None:
    async with app_client(settings.model_copy(update={"cors_origins": "*"})) as http:
        response = await http.get("/api/v1/health/live", headers={"Origin": OTHER})
        assert response.headers["access-control-allow-origin"] == "*"
        response = await http.options("/api/v1/kv/a", headers=preflight("PUT", "authorization", origin=OTHER))
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"


def test_cors_origins_are_checked_at_start_up(settings) -> None:
    assert parse_origins("") == ()
    assert parse_origins("HTTP://Example.COM:80, https://a.example:443, http://[::1]:3000") == (
        "http://example.com",
        "https://a.example",
        "http://[::1]:3000",
    )
    assert parse_origins("http://localhost:5173,http://localhost:5173") == ("http://localhost:5173",)
    for bad in (
        "example.com",
        "http://example.com/",
        "http://example.com/app",
        "ftp://example.com",
        "http://exa mple.com",
        "http://example.com:99999",
        "http://example.com:0",
        "null",
        "http://user@example.com",
        "http://example.com?x=1",
        "*, http://example.com",
        "http://ex\u00e4mple.com",
    ):
        with pytest.raises(ValidationError, match="CORS_ORIGINS"):
            Settings(**{**settings.model_dump(), "cors_origins": bad})
    with pytest.raises(ValidationError, match="CORS_ALLOW_CREDENTIALS"):
        Settings(**{**settings.model_dump(), "cors_origins": "*", "cors_allow_credentials": True})
    credentialed = Settings(
        **{**settings.model_dump(), "cors_origins": "https://a.example", "cors_allow_credentials": True}
    )
    assert credentialed.cors_origin_list == ("https://a.example",)


async def test_credentials_mode_names_the_origin_and_lists_exposed_headers(settings) -> None:
    credentialed = settings.model_copy(update={"cors_origins": PAGE, "cors_allow_credentials": True})
    async with app_client(credentialed) as http:
        response = await http.get("/api/v1/health/live", headers={"Origin": PAGE})
        assert response.headers["access-control-allow-origin"] == PAGE
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "*" not in exposed(response)  # a wildcard means nothing to a credentialed request
        assert "etag" in exposed(response)
