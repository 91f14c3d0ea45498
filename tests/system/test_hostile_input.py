"""Hostile input, one named test per kind: never a 5xx, never a stack trace, always a problem+json
with a stable code (431/413/415/422/416/401), and nothing written where it must not be."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest

from app.config import Settings
from app.main import create_app
from tests.support.api_process import ApiProcess
from tests.support.apps import serve
from tests.support.problems import assert_problem
from tests.support.tenants import register, register_sync

API = "/api/v1"


@pytest.fixture
async def small_limits(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with small request limits (4 KiB bodies, 4 KiB headers, JSON depth 8)."""
    limits = {"max_request_body_bytes": 4096, "max_request_header_bytes": 4096, "max_json_depth": 8}
    async with serve(create_app(settings.model_copy(update=limits))) as http:
        yield http


# -- sizes ---------------------------------------------------------------------------------------


async def test_body_over_the_limit_by_content_length_is_413_before_the_body_is_read(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"max_request_body_bytes": 4096}))
    sent: list[dict] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{API}/kv",
        "raw_path": f"{API}/kv".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000000000")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }

    async def receive() -> dict:
        raise AssertionError("the body was read")

    async def send(message: dict) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["code"] == "payload_too_large" and body["limit"] == 4096


async def test_chunked_body_over_the_limit_is_413_while_it_streams(small_limits: httpx.AsyncClient) -> None:
    tenant = await register(small_limits, "chunky")
    headers = {"Authorization": f"Bearer {tenant['access_token']}", "Content-Type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"key": "big", "value": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = await small_limits.post(f"{API}/kv", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    body = assert_problem(response, 413, "payload_too_large")
    assert "4096 bytes" in body["detail"]
    missing = await small_limits.get(f"{API}/kv/big", headers=headers)
    assert missing.status_code == 404


async def test_object_uploads_are_not_held_to_the_json_body_limit_but_to_their_own(
    small_limits: httpx.AsyncClient,
) -> None:
    tenant = await register(small_limits, "uploader")
    headers = {"Authorization": f"Bearer {tenant['access_token']}"}
    created = await small_limits.post(
        f"{API}/objects/buckets", json={"name": "files", "max_object_size": 20_000}, headers=headers
    )
    assert created.status_code == 201, created.text
    url = f"{API}/objects/buckets/files/objects/blob.bin"
    stored = await small_limits.put(url, content=b"a" * 10_000, headers=headers)  # over 4 KiB, under 20 KB
    assert stored.status_code == 201, stored.text
    too_big = await small_limits.put(url, content=b"b" * 30_000, headers=headers)
    assert_problem(too_big, 413)
    kept = await small_limits.get(url, headers=headers)
    assert kept.content == b"a" * 10_000


@pytest.mark.parametrize("length", ["9" * 5000, "0" * 5000 + "12", "1" + "0" * 30])
async def test_a_content_length_of_thousands_of_digits_is_413_not_a_500(
    client: httpx.AsyncClient, tenant: dict, length: str
) -> None:
    # int() refuses over 4,300 digits: the limit check itself used to fail (found by test_fuzz_every_route)
    headers = {**tenant["headers"], "Content-Type": "application/json", "Content-Length": length}
    response = await client.post(f"{API}/kv", content=b'{"key": "k", "value": 1}', headers=headers)
    if length.lstrip("0") == "12":  # leading zeros: the number is 12, under every limit
        assert response.status_code < 500, response.text
        return
    assert_problem(response, 413, "payload_too_large")
    assert (await client.get(f"{API}/kv/k", headers=tenant["headers"])).status_code == 404


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


@pytest.mark.subprocess
def test_oversized_headers_are_431_from_a_real_uvicorn(
    data_server, queue_server, api_process: Callable[..., ApiProcess]
) -> None:
    """uvicorn's default parser (httptools) accepts headers of any size; the app refuses them."""
    api = api_process({"REDIS_URL": data_server.url, "HUEY_REDIS_URL": queue_server.url})
    for headers in (
        b"X-Big: " + b"a" * 100_000 + b"\r\n",  # one huge header
        b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 20) for i in range(2000)),  # very many headers
        b"Authorization: Bearer " + b"e" * 50_000 + b"\r\n",
    ):
        raw = _raw_request(api.port, b"GET /api/v1/auth/me HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        status_line, _, rest = raw.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large", raw[:300]
        assert b"application/problem+json" in rest
    # The server is still fine.
    assert httpx.get(f"{api.url}/api/v1/health/live", timeout=5).status_code == 200


async def test_headers_over_the_limit_are_431_in_process(small_limits: httpx.AsyncClient) -> None:
    response = await small_limits.get(f"{API}/kv", headers={"X-Padding": "p" * 5000})
    body = assert_problem(response, 431, "headers_too_large")
    assert body["limit"] == 4096


# -- JSON structure ------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


async def test_deeply_nested_json_is_422_with_the_limit_named(small_limits: httpx.AsyncClient) -> None:
    tenant = await register(small_limits, "nester")
    headers = {"Authorization": f"Bearer {tenant['access_token']}", "Content-Type": "application/json"}
    ok = await small_limits.put(f"{API}/kv/shallow", content=f'{{"value": {_nested(8)}}}', headers=headers)
    assert ok.status_code == 201, ok.text
    for path, body in (
        (f"{API}/kv/deep", f'{{"value": {_nested(9)}}}'),
        (f"{API}/kv", f'{{"key": "deep", "value": {_nested(9)}}}'),
        (f"{API}/kv/batch", f'{{"items": [{{"key": "deep", "value": {_nested(9)}}}]}}'),
    ):
        method = "PUT" if path.endswith("/deep") else "POST"
        response = await small_limits.request(method, path, content=body, headers=headers)
        problem = assert_problem(response, 422, "validation_error")
        assert "deeper than 8" in problem["detail"], problem
    patch = await small_limits.patch(
        f"{API}/kv/shallow",
        content=f'{{"a": {_nested(9)}}}',
        headers={**headers, "Content-Type": "application/merge-patch+json"},
    )
    assert "deeper than 8" in assert_problem(patch, 422)["detail"]
    assert (await small_limits.get(f"{API}/kv/deep", headers=headers)).status_code == 404


async def test_json_nested_past_the_parsers_stack_is_422_not_a_crash(small_limits: httpx.AsyncClient) -> None:
    tenant = await register(small_limits, "abyss")
    headers = {"Authorization": f"Bearer {tenant['access_token']}", "Content-Type": "application/json"}
    abyss = f'{{"value": {_nested(1500)}}}'  # small in bytes (3 KB), deeper than Python's recursion limit
    response = await small_limits.put(f"{API}/kv/abyss", content=abyss, headers=headers)
    assert "deeper than 8" in assert_problem(response, 422, "validation_error")["detail"]
    patch = await small_limits.patch(
        f"{API}/kv/abyss", content=_nested(1500), headers={**headers, "Content-Type": "application/merge-patch+json"}
    )
    assert_problem(patch, 422)


async def test_duplicate_json_keys_last_one_wins(client: httpx.AsyncClient, tenant: dict) -> None:
    """Documented behaviour (README, Guarantees): like JSON.parse and Python, the last duplicate wins."""
    headers = {**tenant["headers"], "Content-Type": "application/json"}
    body = '{"key": "first", "value": 1, "key": "second", "value": 2}'
    response = await client.post(f"{API}/kv", content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert (await client.get(f"{API}/kv/second", headers=headers)).json()["value"] == 2
    assert (await client.get(f"{API}/kv/first", headers=headers)).status_code == 404


async def test_invalid_utf8_is_400_or_422_never_500(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = {**tenant["headers"], "Content-Type": "application/json"}
    body = assert_problem(await client.put(f"{API}/kv/k", content=b'{"value": "\xff\xfe"}', headers=headers), 400)
    assert "UTF-8" in body["detail"]
    patch_headers = {**headers, "Content-Type": "application/merge-patch+json"}
    assert (await client.put(f"{API}/kv/k", json={"value": 1}, headers=headers)).status_code == 201
    assert_problem(await client.patch(f"{API}/kv/k", content=b'{"a": "\xc3\x28"}', headers=patch_headers), 400)
    # Invalid UTF-8 in the path (a key, a bucket, an object name) is a bad name.
    assert_problem(await client.get(f"{API}/kv/a%FFb", headers=headers), 422)
    assert_problem(await client.get(f"{API}/kv/buckets/b%C3%28/keys/k", headers=headers), 422)
    assert (await client.post(f"{API}/objects/buckets", json={"name": "files"}, headers=headers)).status_code == 201
    for name in ("a%FFb", "a%C3%28b", "%ED%A0%80"):  # a stray byte, a bad sequence, a surrogate
        response = await client.put(f"{API}/objects/buckets/files/objects/{name}", content=b"x", headers=headers)
        assert "UTF-8" in assert_problem(response, 422, "validation_error")["detail"]
    listed = await client.get(f"{API}/objects/buckets/files/objects", headers=headers)
    assert listed.json()["items"] == []


@pytest.mark.parametrize("bad", ["a%00b", "a%0Ab", "a%0Db", "a%1Fb", "a%7Fb", "a%09b", "%00"])
async def test_nul_and_control_characters_in_names_are_422(client: httpx.AsyncClient, tenant: dict, bad: str) -> None:
    headers = tenant["headers"]
    assert (await client.post(f"{API}/kv/buckets", json={"name": "ok"}, headers=headers)).status_code == 201
    assert (await client.post(f"{API}/objects/buckets", json={"name": "ok"}, headers=headers)).status_code == 201
    assert_problem(await client.put(f"{API}/kv/{bad}", json={"value": 1}, headers=headers), 422)
    assert_problem(await client.put(f"{API}/kv/buckets/ok/keys/{bad}", json={"value": 1}, headers=headers), 422)
    assert_problem(await client.get(f"{API}/kv/buckets/{bad}/keys/k", headers=headers), 422)
    assert_problem(await client.put(f"{API}/objects/buckets/ok/objects/{bad}", content=b"x", headers=headers), 422)
    raw = bad.replace("%00", "\x00").replace("%0A", "\n").replace("%0D", "\r").replace("%1F", "\x1f")
    raw = raw.replace("%7F", "\x7f").replace("%09", "\t")
    assert_problem(await client.post(f"{API}/kv", json={"key": raw, "value": 1}, headers=headers), 422)
    assert_problem(await client.post(f"{API}/kv/buckets", json={"name": raw}, headers=headers), 422)
    assert_problem(await client.post(f"{API}/objects/buckets", json={"name": raw}, headers=headers), 422)
    count = await client.get(f"{API}/kv/stats/count", headers=headers)
    assert count.json()["count"] == 0
    listed = await client.get(f"{API}/objects/buckets/ok/objects", headers=headers)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    "name",
    [
        "%2e%2e/other/objects/secret",
        "a/%2e%2e/%2e%2e/other/objects/secret",
        "%2E%2E%2Fother%2Fobjects%2Fsecret",
        ".%2e/x",
        "%2e/x",
        "a/%2e/b",
        "%2e%2e",
    ],
)
async def test_path_traversal_in_object_names_is_422(client: httpx.AsyncClient, tenant: dict, name: str) -> None:
    """Dot segments that reach the app (percent-encoded, so no client or proxy removed them)."""
    headers = tenant["headers"]
    for bucket in ("files", "other"):
        response = await client.post(f"{API}/objects/buckets", json={"name": bucket}, headers=headers)
        assert response.status_code == 201
    response = await client.put(f"{API}/objects/buckets/files/objects/{name}", content=b"evil", headers=headers)
    assert_problem(response, 422, "validation_error")
    for bucket in ("files", "other"):
        listed = await client.get(f"{API}/objects/buckets/{bucket}/objects", headers=headers)
        assert listed.json()["items"] == [], listed.text


@pytest.mark.subprocess
def test_literal_dot_segments_sent_raw_to_uvicorn_never_leave_the_bucket(
    data_server, queue_server, api_process: Callable[..., ApiProcess]
) -> None:
    api = api_process({"REDIS_URL": data_server.url, "HUEY_REDIS_URL": queue_server.url})
    tenant = register_sync(api.url, "traveller")
    for bucket in ("files", "other"):
        response = httpx.post(f"{api.url}{API}/objects/buckets", json={"name": bucket}, headers=tenant["headers"])
        assert response.status_code == 201
    token = tenant["headers"]["Authorization"].encode()
    for target in (
        b"/api/v1/objects/buckets/files/objects/../../other/objects/secret",
        b"/api/v1/objects/buckets/files/objects/a/../../../other/objects/secret",
        b"/api/v1/objects/buckets/files/objects/./secret",
    ):
        raw = _raw_request(
            api.port,
            b"PUT "
            + target
            + b" HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + token
            + b"\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
        )
        status = raw.split(b" ", 2)[1]
        assert status == b"422", raw[:400]
    for bucket in ("files", "other"):
        listed = httpx.get(f"{api.url}{API}/objects/buckets/{bucket}/objects", headers=tenant["headers"])
        assert listed.json()["items"] == [], listed.text


async def test_an_encoded_slash_is_part_of_the_object_name_and_stays_in_its_bucket(
    client: httpx.AsyncClient, tenant: dict
) -> None:
    headers = tenant["headers"]
    for bucket in ("files", "other"):
        assert (await client.post(f"{API}/objects/buckets", json={"name": bucket}, headers=headers)).status_code == 201
    response = await client.put(f"{API}/objects/buckets/files/objects/dir%2Fname.txt", content=b"x", headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["bucket"] == "files" and response.json()["name"] == "dir/name.txt"
    assert (await client.get(f"{API}/objects/buckets/other/objects", headers=headers)).json()["items"] == []
    # A KV key is one path segment: with an encoded slash it matches no key route.
    response = await client.put(f"{API}/kv/buckets/files/keys/a%2Fb", json={"value": 1}, headers=headers)
    assert_problem(response, 404, "not_found")
    assert (await client.get(f"{API}/kv/buckets/files/keys", headers=headers)).status_code == 404  # no such bucket


@pytest.mark.parametrize(
    "path",
    [
        "/kv?page_size=1000000000000000000000",
        "/kv?limit=-1",
        "/kv?page=-5",
        "/kv?page=0",
        "/kv?limit=1001",
        "/kv?page_size=abc",
        "/kv/k?revision=-1",
        "/kv/k/history?limit=-3",
        "/kv/k/history?limit=99999999999999999999",
        "/audit?limit=-1",
        "/audit?limit=100000000",
        "/objects/buckets/files/objects?limit=0",
        "/objects/buckets/files/objects?limit=-1",
        "/objects/buckets/files/objects?limit=10000000000",
        "/kv/buckets/b/watch?since=-1",
        "/kv/k?expected_version=-1",
    ],
)
async def test_huge_and_negative_numbers_in_the_query_are_422(
    client: httpx.AsyncClient, tenant: dict, path: str
) -> None:
    method = "DELETE" if "expected_version" in path else "GET"
    assert_problem(await client.request(method, API + path, headers=tenant["headers"]), 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/kv/k", {"value": 1, "ttl": -1}),
        ("/kv/k", {"value": 1, "ttl": 10**30}),
        ("/kv/k", {"value": 1, "ttl": True}),
        ("/kv/k", {"value": 1, "ttl": "60"}),
        ("/kv/buckets", {"name": "b", "history": -1}),
        ("/kv/buckets", {"name": "b", "history": 10**12}),
        ("/kv/buckets", {"name": "b", "max_value_size": -5}),
        ("/objects/buckets", {"name": "b", "max_object_size": -1}),
        ("/objects/buckets", {"name": "b", "chunk_size": 10**20}),
    ],
)
async def test_huge_and_negative_numbers_in_bodies_are_422(
    client: httpx.AsyncClient, tenant: dict, path: str, body: dict
) -> None:
    method = "PUT" if path == "/kv/k" else "POST"
    assert_problem(await client.request(method, API + path, json=body, headers=tenant["headers"]), 422)


async def test_negative_part_numbers_are_422(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    assert (await client.post(f"{API}/objects/buckets", json={"name": "files"}, headers=headers)).status_code == 201
    upload = await client.post(f"{API}/objects/buckets/files/objects/big/uploads", headers=headers)
    assert upload.status_code == 201, upload.text
    base = f"{API}/objects/buckets/files/objects/big/uploads/{upload.json()['upload_id']}"
    for part in ("0", "-1", "99999999999999999999999"):
        response = await client.put(f"{base}/parts/{part}", content=b"x", headers=headers)
        assert response.status_code == 422, response.text
    assert_problem(await client.post(f"{base}/complete", json={"parts": [-1]}, headers=headers), 422)


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/kv", "text/plain"),
        ("POST", "/kv", None),
        ("POST", "/kv", "application/x-www-form-urlencoded"),
        ("PUT", "/kv/k", "multipart/form-data; boundary=x"),
        ("POST", "/kv/batch", "application/xml"),
        ("POST", "/kv/buckets", "text/json"),
        ("PATCH", "/kv/k", "text/plain"),
        ("POST", "/auth/register", "text/plain"),
    ],
)
async def test_a_json_endpoint_refuses_another_content_type_with_415(
    client: httpx.AsyncClient, tenant: dict, method: str, path: str, content_type: str | None
) -> None:
    headers = {**tenant["headers"]}
    if content_type:
        headers["Content-Type"] = content_type
    body = b'{"key": "k", "name": "n", "value": 1, "items": [{"key": "k", "value": 1}]}'
    response = await client.request(method, API + path, content=body, headers=headers)
    assert_problem(response, 415, "unsupported_media_type")
    assert (await client.get(f"{API}/kv/k", headers=tenant["headers"])).status_code == 404


async def test_merge_patch_and_json_subtypes_are_accepted(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    put = await client.put(
        f"{API}/kv/k",
        content=b'{"value": {"a": 1}}',
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert put.status_code == 201, put.text
    patch = await client.patch(
        f"{API}/kv/k", content=b'{"b": 2}', headers={**headers, "Content-Type": "application/merge-patch+json"}
    )
    assert patch.json()["value"] == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("range_header", "status"),
    [
        ("bytes=abc", 200),
        ("bytes=5-2", 200),
        ("bytes=--1", 200),
        ("items=0-1", 200),
        ("bytes=0-1,3-4", 200),
        ("bytes=", 200),
        ("bytes=99999999999999999999999999-", 416),
        ("bytes=100-", 416),
        ("bytes=-0", 416),
        ("bytes=0-99999999999999999999999999", 206),
        ("bytes=\x00-1", 200),
    ],
)
async def test_malformed_range_headers_are_ignored_or_416(
    client: httpx.AsyncClient, tenant: dict, range_header: str, status: int
) -> None:
    headers = tenant["headers"]
    assert (await client.post(f"{API}/objects/buckets", json={"name": "files"}, headers=headers)).status_code == 201
    content = bytes(range(100))
    url = f"{API}/objects/buckets/files/objects/data.bin"
    assert (await client.put(url, content=content, headers=headers)).status_code == 201
    response = await client.get(url, headers={**headers, "Range": range_header})
    assert response.status_code == status, response.text
    if status == 200:
        assert response.content == content
    elif status == 206:
        assert response.content == content and response.headers["content-range"] == "bytes 0-99/100"
    else:
        assert_problem(response, 416)
        assert response.headers["content-range"] == "bytes */100"


# -- tokens --------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(tenant_id: str) -> dict:
    now = int(time.time())
    return {"sub": tenant_id, "usr": "mallory", "type": "access", "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}


def _unsigned(claims: dict, alg: str = "none") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


async def _assert_refused(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(f"{API}/kv/secret", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "secret-value" not in response.text, body


@pytest.mark.filterwarnings("ignore:The HMAC key is .* bytes long")  # the HS512 forgery uses the short test key
async def test_forged_tokens_are_401(client: httpx.AsyncClient, tenant: dict, settings: Settings) -> None:
    """alg none, a tampered payload or signature, another secret, another HMAC, a refresh token."""
    victim = tenant["tenant_id"]
    assert (
        await client.put(f"{API}/kv/secret", json={"value": "secret-value"}, headers=tenant["headers"])
    ).status_code == 201
    real = tenant["access_token"]
    header, payload, signature = real.split(".")
    forged_payload = _b64(
        json.dumps({**json.loads(base64.urlsafe_b64decode(payload + "==")), "usr": "mallory"}).encode()
    )
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_secret = "another-secret-that-is-also-long-enough-0123456789"
    hs256_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = f"{hs256_header}.{_b64(json.dumps(_claims(victim)).encode())}"
    # "none" signed with the real secret as if the verifier took the header's word for it.
    none_hmac = _b64(hmac.new(settings.secret_key.encode(), body.encode(), hashlib.sha256).digest())
    for token in (
        _unsigned(_claims(victim)),
        _unsigned(_claims(victim), alg="NONE"),
        _unsigned(_claims(victim), alg="None") + "c2ln",
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload}.{flipped}",
        f"{header}.{payload}.",
        jwt.encode(_claims(victim), other_secret, algorithm="HS256"),
        jwt.encode(_claims(victim), settings.secret_key, algorithm="HS512"),
        jwt.encode({**_claims(victim), "type": "refresh", "fam": "f"}, settings.secret_key, algorithm="HS256"),
        jwt.encode({**_claims(victim), "exp": int(time.time()) - 10}, settings.secret_key, algorithm="HS256"),
        jwt.encode({**_claims(victim), "sub": victim.upper()}, settings.secret_key, algorithm="HS256"),
        f"{_b64(json.dumps({'alg': 'none'}).encode())}.{body.split('.')[1]}.{none_hmac}",
        "not-a-jwt",
        "a.b.c",
    ):
        await _assert_refused(client, token)
    response = await client.get(f"{API}/kv/secret", headers={"Authorization": "Bearer "})
    assert_problem(response, 401, "unauthorized")


async def test_the_token_alone_picks_the_tenant_whatever_the_other_headers_say(
    client: httpx.AsyncClient, tenant: dict
) -> None:
    other = await register(client, "bob")
    alice, bob = tenant, {**other, "headers": {"Authorization": f"Bearer {other['access_token']}"}}
    assert (await client.put(f"{API}/kv/mine", json={"value": "bob's"}, headers=bob["headers"])).status_code == 201
    spoof = {
        "X-Tenant-ID": bob["tenant_id"],
        "X-Tenant": bob["tenant_id"],
        "Tenant-ID": bob["tenant_id"],
        "X-Forwarded-User": "bob",
        "X-User": "bob",
        "X-Org-Id": bob["tenant_id"],
    }
    query = {"tenant_id": bob["tenant_id"], "tenant": bob["tenant_id"], "sub": bob["tenant_id"]}
    headers = {**alice["headers"], **spoof}
    # Alice reads her own (empty) tenant, not Bob's key.
    response = await client.get(f"{API}/kv/mine", headers=headers, params=query)
    assert_problem(response, 404, "key_not_found")
    # Alice's write lands in Alice's tenant.
    written = await client.put(f"{API}/kv/mine", json={"value": "alice's"}, headers=headers, params=query)
    assert written.status_code == 201, written.text
    assert (await client.get(f"{API}/kv/mine", headers=bob["headers"])).json()["value"] == "bob's"
    assert (await client.get(f"{API}/kv/mine", headers=alice["headers"])).json()["value"] == "alice's"
    me = await client.get(f"{API}/auth/me", headers=headers, params=query)
    assert me.json()["tenant_id"] == alice["tenant_id"]
    usage = await client.get(f"{API}/usage", headers=headers, params=query)
    assert usage.status_code == 200 and bob["tenant_id"] not in usage.text
    # Without a token, no header selects a tenant.
    assert_problem(await client.get(f"{API}/kv/mine", headers=spoof, params=query), 401)


# -- watch (not fuzzed by schemathesis: a stream only ends when the client leaves) ----------------


async def test_watch_endpoints_refuse_bad_input_with_problems(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    assert_problem(await client.get(f"{API}/kv/watch"), 401)
    assert_problem(await client.get(f"{API}/kv/watch", params={"access_token": "forged.token.x"}), 401, "invalid_token")
    assert_problem(await client.get(f"{API}/kv/buckets/nope/watch", headers=headers), 404)
    assert_problem(await client.get(f"{API}/kv/buckets/a%00b/watch", headers=headers), 422)
    assert_problem(await client.get(f"{API}/kv/buckets/{'b' * 300}/watch", headers=headers), 422)
    assert_problem(await client.get(f"{API}/kv/watch", params={"since": "-1"}, headers=headers), 422)
    assert_problem(await client.get(f"{API}/kv/watch", params={"since": "x" * 50}, headers=headers), 422)
    assert_problem(await client.get(f"{API}/kv/watch", params={"key": ""}, headers=headers), 422)
    assert_problem(await client.get(f"{API}/kv/watch", headers={**headers, "Last-Event-ID": "../1"}), 422)
