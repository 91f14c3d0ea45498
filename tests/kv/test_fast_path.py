"""GET and PUT of one key answer the same through their fast path and through FastAPI's own handler.

The same generated request (plain and hostile keys, buckets, query strings, preconditions, content
types, bodies and tokens) is sent to an app with fast paths and to one without, each on the same
freshly seeded data; the answers must be equal but for timestamps and request ids."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.config import Settings
from app.main import create_app
from app.platform.http.fastpath import fast_path_route
from tests.support.api_keys import create_key
from tests.support.apps import serve
from tests.support.tenants import PASSWORD

# slow: hundreds of requests sent both ways; `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

TIMESTAMP_RE = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")

# Weighted towards the plain case (a valid token, JSON, an existing key), where the fast path answers.
keys = st.one_of(
    st.just("k"),
    st.just("absent"),
    st.sampled_from(["k", "absent", "a b", "ü", "buckets", "watch", "k.json", "x" * 300, "%00", "\ud800"]),
    st.text(min_size=1, max_size=12),
)
buckets = st.sampled_from([None, None, None, "default", "b1", "b1", "missing", "B@d", "x" * 300])
queries = st.sampled_from(
    ["", "", "", "", "revision=1", "revision=0", "expected_version=1", "expectedRevision=x", "junk=1"]
)
preconditions = st.sampled_from([None, None, None, '"1"', '"2"', 'W/"1"', "*", '"²"', '"1", "2"', "garbage"])
content_types = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/merge-patch+json",
        None,
    ]
)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=6,
)
bodies = st.one_of(
    st.builds(lambda v: json.dumps({"value": v}).encode(), values),
    st.builds(lambda v: json.dumps({"value": v}).encode(), values),
    st.builds(lambda v, t: json.dumps({"value": v, "ttl": t}).encode(), values, st.integers(-5, 10**12)),
    st.builds(lambda v: json.dumps({"value": v, "tags": {"env": "x"}}).encode(), values),
    st.sampled_from(
        [
            b"",
            b"{",
            b"null",
            b"[]",
            b'{"value": 1, "extra": 2}',
            b'{"value": "aGk=", "encoding": "base64"}',
            b'{"value": "not base64!", "encoding": "base64"}',
            b'{"value": NaN}',
            b'{"value": 1e999}',
            b'{"value": "\\ud800"}',
            b'{"tags": {"a": "b"}}',
            b'{"value": 1, "tags": {"bad name": "x"}}',
            b'{"value": 1, "ttl": true}',
            b"[" * 5000,
        ]
    ),
)
# API keys (seeded): read-only, write-only, and one limited to bucket b1 and keys starting with "k".
API_KEY_AUTHS = {
    "key-read": {"scopes": ["kv:read"]},
    "key-write": {"scopes": ["kv:write"]},
    "key-b1-k": {"scopes": ["kv:read", "kv:write"], "buckets": ["b1"], "key_prefix": "k"},
}
auths = st.sampled_from(["valid"] * 6 + [*API_KEY_AUTHS] * 2 + ["none", "garbage", "Basic abc", "kvs_forged"])


class Apps:
    """An app with fast paths and one without, on the test's Redis, driven from one event loop (the
    examples of a Hypothesis test are plain calls, so they cannot share the test's own loop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runner = asyncio.Runner()
        self.stack = contextlib.AsyncExitStack()
        fast = settings.model_copy(update={"kv_fast_paths": True, "rate_limit_per_second": 0})
        standard = settings.model_copy(update={"kv_fast_paths": False, "rate_limit_per_second": 0})
        self.fast = self.runner.run(self.stack.enter_async_context(serve(create_app(fast))))
        self.standard = self.runner.run(self.stack.enter_async_context(serve(create_app(standard))))

    def close(self) -> None:
        self.runner.run(self.stack.aclose())
        self.runner.close()


@pytest.fixture
def apps(settings: Settings) -> Iterator[Apps]:
    both = Apps(settings)
    try:
        yield both
    finally:
        both.close()


async def seeded(client: httpx.AsyncClient, data_url: str) -> str:
    """Fresh data: one tenant with key `k` (version 1) in `default` and bucket `b1`; its token."""
    return (await seeded_credentials(client, data_url))["valid"]


async def seeded_credentials(client: httpx.AsyncClient, data_url: str) -> dict[str, str]:
    """Fresh data as :func:`seeded`, and the tenant's credentials: its token ("valid") and API keys
    (API_KEY_AUTHS)."""
    plain = redis.Redis.from_url(data_url)
    plain.flushall()
    plain.close()
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    token = (await client.post("/api/v1/auth/register", json=body)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    await client.post("/api/v1/kv/buckets", json={"name": "b1"}, headers=headers)
    for path in ("/api/v1/kv/k", "/api/v1/kv/buckets/b1/keys/k"):
        assert (await client.put(path, json={"value": {"a": 1}}, headers=headers)).status_code == 201
    credentials = {"valid": token}
    for name, grant in API_KEY_AUTHS.items():
        credentials[name] = (await create_key(client, headers, name=name, **grant))["key"]
    return credentials


def normalized(response: httpx.Response) -> tuple[Any, ...]:
    body = TIMESTAMP_RE.sub(b"<time>", response.content)
    body = re.sub(rb'"request_id":"[^"]*"', b'"request_id":"-"', body)
    headers = {
        name: value
        for name, value in response.headers.items()
        if name in ("content-type", "etag", "allow", "www-authenticate")
    }
    return response.status_code, headers, body


async def answer(
    client: httpx.AsyncClient, data_url: str, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> tuple[Any, ...]:
    async with asyncio.timeout(30):  # a hang fails here, with the await it hung in
        return await _answer(client, data_url, method, path, headers, body)


async def _answer(
    client: httpx.AsyncClient, data_url: str, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> tuple[Any, ...]:
    credentials = await seeded_credentials(client, data_url)
    if headers.get("Authorization") in credentials:
        headers = {**headers, "Authorization": f"Bearer {credentials[headers['Authorization']]}"}
    elif headers.get("Authorization") == "kvs_forged":
        headers = {**headers, "Authorization": "Bearer kvs_" + "0" * 48 + "a" * 43}
    raw = {name: value.encode() for name, value in headers.items()}  # '²' goes as UTF-8 bytes
    return normalized(await client.request(method, path, headers=raw, content=body))


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "PUT"]),
    key=keys,
    bucket=buckets,
    query=queries,
    if_match=preconditions,
    if_none_match=preconditions,
    content_type=content_types,
    body=bodies,
    auth=auths,
)
def test_fast_and_standard_paths_answer_alike(
    apps, method, key, bucket, query, if_match, if_none_match, content_type, body, auth
) -> None:
    assume(not (method == "GET" and bucket is None and key == "watch"))  # GET /kv/watch is the event stream
    encoded = quote(key.encode("utf-8", "surrogatepass"), safe="")
    path = f"/api/v1/kv/{encoded}" if bucket is None else f"/api/v1/kv/buckets/{quote(bucket)}/keys/{encoded}"
    if query:
        path = f"{path}?{query}"
    headers = {} if auth == "none" else {"Authorization": auth}
    if if_match:
        headers["If-Match"] = if_match
    if if_none_match:
        headers["If-None-Match"] = if_none_match
    if method == "PUT" and content_type:
        headers["Content-Type"] = content_type
    content = body if method == "PUT" else None
    url = apps.settings.redis_url
    one = apps.runner.run(answer(apps.fast, url, method, path, headers, content))
    two = apps.runner.run(answer(apps.standard, url, method, path, headers, content))
    assert one == two


def test_the_plain_requests_take_the_fast_path(apps, monkeypatch) -> None:
    """The comparison above means something only if the fast path serves the plain case."""
    apps.runner.run(plain_requests_take_the_fast_path(apps.fast, apps.settings.redis_url, monkeypatch))


async def plain_requests_take_the_fast_path(fast: httpx.AsyncClient, data_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    credentials = await seeded_credentials(fast, data_url)
    token = credentials["valid"]
    served: list[str] = []
    from app.kv import service

    original_get, original_put = service.KVService.get, service.KVService.put

    async def get(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        import inspect

        served.append(inspect.stack()[1].function)
        return await original_get(self, *args, **kwargs)

    async def put(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        import inspect

        served.append(inspect.stack()[2].function)
        return await original_put(self, *args, **kwargs)

    monkeypatch.setattr(service.KVService, "get", get)
    monkeypatch.setattr(service.KVService, "put", put)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await fast.get("/api/v1/kv/k", headers=headers)).status_code == 200
    assert (
        await fast.put("/api/v1/kv/k", json={"value": 2}, headers={**headers, "If-Match": '"1"'})
    ).status_code == 200
    assert (await fast.get("/api/v1/kv/buckets/b1/keys/k", headers=headers)).status_code == 200
    assert (await fast.get("/api/v1/kv/k?revision=1", headers=headers)).status_code == 200
    assert served == ["fast_get", "fast_put", "fast_get", "get_key"]
    served.clear()
    limited = {"Authorization": f"Bearer {credentials['key-b1-k']}"}
    assert (await fast.get("/api/v1/kv/buckets/b1/keys/k", headers=limited)).status_code == 200
    assert (await fast.put("/api/v1/kv/buckets/b1/keys/k", json={"value": 3}, headers=limited)).status_code == 200
    refused = await fast.get("/api/v1/kv/k", headers=limited)  # bucket `default`: not this key's
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert served == ["fast_get", "fast_put"]


def test_a_fast_path_route_is_a_plain_api_route() -> None:
    from fastapi.routing import APIRoute

    async def nothing(request):  # type: ignore[no-untyped-def]
        return None

    assert issubclass(fast_path_route(nothing), APIRoute)
