"""Issue #14: hostile input to the object routes is a 4xx problem+json (or ignored where RFC 9110
says so), never a 500: absurd numbers, lone surrogates, NUL, non-ASCII digits."""

from __future__ import annotations

import pytest

from tests.support.objects import API, BUCKET, object_url, payload, put_ok

HUGE = "9" * 5000


def assert_client_error(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.status_code != 416 or response.content:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text


@pytest.mark.parametrize(
    ("header", "status", "content"),
    [
        (f"bytes={HUGE}-", 416, None),  # starts past the end: unsatisfiable
        (f"bytes=0-{HUGE}", 206, b"0-all"),  # to the end
        (f"bytes=-{HUGE}", 206, b"0-all"),  # a suffix longer than the object: all of it
        (f"bytes={HUGE}-{HUGE}", 416, None),
        ("bytes=²-3", 200, b"all"),  # not a byte range: ignored
        ("bytes=\u0661-3", 200, b"all"),
        ("bytes=1-\u0663", 200, b"all"),
    ],
)
async def test_absurd_ranges_are_ignored_or_416(client, tenant, bucket, header, status, content) -> None:
    data = payload(1000)
    await put_ok(client, tenant, "r", data)
    response = await client.get(object_url("r"), headers={**tenant["headers"], "Range": header.encode()})
    assert response.status_code == status, response.text
    if status == 416:
        assert response.headers["content-range"] == "bytes */1000"
    else:
        assert response.content == data


@pytest.mark.parametrize(
    "query",
    [
        "limit=%C2%B2",
        "limit=%D9%A1%D9%A0",
        f"limit={HUGE}",
        f"limit=-{HUGE}",
        "cursor=%ED%A0%80",
        "prefix=%ED%A0%80",
        "prefix=a%00b",
        "cursor=%25%25%25",
        "cursor=%00",
        "cursor=_w",
        "prefix=%FF",
    ],
)
async def test_list_parameters(client, tenant, bucket, query) -> None:
    url = f"{API}/buckets/{BUCKET}/objects?{query}"
    response = await client.get(url, headers=tenant["headers"])
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_client_error(response)


@pytest.mark.parametrize("name", ["%ED%A0%80", "a%00b", "%F0%9F%98", "x" * 5000, "%C0%80"])
async def test_hostile_object_names(client, tenant, bucket, name) -> None:
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        response = await client.request(method, object_url(name), content=b"x", headers=tenant["headers"])
        assert response.status_code < 500 and response.status_code != 200, (method, response.text)
    for suffix, method in (("/verify", "GET"), ("/uploads", "POST")):
        response = await client.request(method, object_url(name) + suffix, headers=tenant["headers"])
        assert response.status_code < 500, (suffix, response.text)


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "\\ud800"}',
        '{"name": "ok", "description": "\\ud800"}',
        '{"name": "ok", "description": "a\\u0000b"}',
        '{"name": "ok", "chunk_size": ' + HUGE + "}",
        '{"name": "ok", "max_object_size": 1' + "0" * 400 + "}",
        '{"name": "ok", "chunk_size": 1e999}',
    ],
)
async def test_hostile_bucket_bodies(client, tenant, raw) -> None:
    headers = {**tenant["headers"], "Content-Type": "application/json"}
    response = await client.post(f"{API}/buckets", content=raw, headers=headers)
    assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Object-Meta-x", "\x00"),
        ("X-Object-Description", "é\xff"),
        ("If-Match", '"' + HUGE + '"'),
        ("If-None-Match", "²"),
        ("Content-Length", HUGE),
        ("If-Modified-Since", HUGE),
    ],
)
async def test_hostile_headers(client, tenant, bucket, header, value) -> None:
    headers = {**tenant["headers"], header.encode("latin-1"): value.encode("latin-1")}
    for method in ("PUT", "GET"):
        try:
            response = await client.request(method, object_url("h"), content=b"x", headers=headers)
        except Exception as exc:  # the client itself refuses to send it
            pytest.skip(f"client refuses the header: {exc}")
        assert response.status_code < 500, (method, response.text)


@pytest.mark.parametrize(
    "raw", ['{"parts": ["\\ud800"]}', '{"parts": [' + HUGE + "]}", '{"parts": [-1]}', '{"parts": [1.5]}']
)
async def test_hostile_completion_bodies(client, tenant, bucket, raw) -> None:
    started = await client.post(object_url("m") + "/uploads", headers=tenant["headers"])
    upload = started.json()["upload_id"]
    for part in ("%ED%A0%80", "%C2%B2", HUGE, "0"):
        response = await client.put(
            f"{object_url('m')}/uploads/{upload}/parts/{part}", content=b"x", headers=tenant["headers"]
        )
        assert_client_error(response)
    headers = {**tenant["headers"], "Content-Type": "application/json"}
    response = await client.post(f"{object_url('m')}/uploads/{upload}/complete", content=raw, headers=headers)
    assert_client_error(response)
