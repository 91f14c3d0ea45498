"""Range requests (a-b, a-, -n), 416, If-Range, and conditional GET/PUT/DELETE."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.objects import CHUNK, object_url, payload, put_object, put_ok

pytestmark = pytest.mark.contract

SIZE = 3 * CHUNK + 1000
DATA = payload(SIZE, seed=3)


@pytest.fixture
async def obj(client, tenant, bucket) -> dict:
    return await put_ok(client, tenant, "big.bin", DATA)


async def get(client, tenant, headers: dict[str, str], name: str = "big.bin"):
    return await client.get(object_url(name), headers={**tenant["headers"], **headers})


RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=10-99", 10, 99),  # inside one chunk
    (f"bytes={CHUNK - 5}-{CHUNK + 5}", CHUNK - 5, CHUNK + 5),  # across a chunk boundary
    (f"bytes={CHUNK}-{2 * CHUNK - 1}", CHUNK, 2 * CHUNK - 1),  # exactly one chunk
    (f"bytes=100-{3 * CHUNK + 10}", 100, 3 * CHUNK + 10),  # spans four chunks
    (f"bytes={SIZE - 1}-", SIZE - 1, SIZE - 1),  # a- : the last byte
    ("bytes=5000-", 5000, SIZE - 1),  # a- : to the end
    ("bytes=-1", SIZE - 1, SIZE - 1),  # -n : the last byte
    ("bytes=-70000", SIZE - 70000, SIZE - 1),  # -n : the tail, across chunks
    (f"bytes=-{SIZE + 50}", 0, SIZE - 1),  # -n longer than the object: all of it
    (f"bytes=100-{SIZE + 1000}", 100, SIZE - 1),  # b past the end is clamped
]


async def test_range_forms_give_206_with_exact_bytes(client, tenant, obj) -> None:
    for header, first, last in RANGES:
        response = await get(client, tenant, {"Range": header})
        assert response.status_code == 206, header
        assert response.content == DATA[first : last + 1], header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
        assert response.headers["content-length"] == str(last - first + 1)


async def test_unsatisfiable_range_is_416_with_the_size(client, tenant, obj) -> None:
    for header in (f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"):
        response = await get(client, tenant, {"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{SIZE}"
        assert response.json()["code"] == "range_not_satisfiable"


async def test_any_range_of_an_empty_object_is_416(client, tenant, bucket) -> None:
    await put_ok(client, tenant, "empty", b"")
    response = await get(client, tenant, {"Range": "bytes=0-"}, name="empty")
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */0"


async def test_malformed_or_multiple_ranges_are_ignored(client, tenant, obj) -> None:
    for header in ("bytes=9-3", "items=0-5", "bytes=0-1,5-6", "bytes=-", "bytes=x-"):
        response = await get(client, tenant, {"Range": header})
        assert response.status_code == 200, header
        assert response.content == DATA


async def test_head_with_range_gives_the_headers_only(client, tenant, obj) -> None:
    response = await client.head(object_url("big.bin"), headers={**tenant["headers"], "Range": "bytes=0-9"})
    assert response.status_code == 206
    assert response.headers["content-length"] == "10"
    assert response.content == b""


async def test_if_range_with_the_current_etag_honours_the_range(client, tenant, obj) -> None:
    response = await get(client, tenant, {"Range": "bytes=0-9", "If-Range": obj["etag"]})
    assert response.status_code == 206
    assert response.content == DATA[:10]


async def test_if_range_with_another_etag_sends_everything(client, tenant, obj) -> None:
    response = await get(client, tenant, {"Range": "bytes=0-9", "If-Range": '"0000"'})
    assert response.status_code == 200
    assert response.content == DATA


async def test_if_range_with_the_last_modified_date(client, tenant, obj) -> None:
    last_modified = (await client.head(object_url("big.bin"), headers=tenant["headers"])).headers["last-modified"]
    response = await get(client, tenant, {"Range": "bytes=0-9", "If-Range": last_modified})
    assert response.status_code == 206
    response = await get(client, tenant, {"Range": "bytes=0-9", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert response.status_code == 200


async def test_if_none_match_gives_304(client, tenant, obj) -> None:
    for value in (obj["etag"], f"W/{obj['etag']}", '"other", ' + obj["etag"], "*"):
        response = await get(client, tenant, {"If-None-Match": value})
        assert response.status_code == 304, value
        assert response.content == b""
        assert response.headers["etag"] == obj["etag"]
    response = await get(client, tenant, {"If-None-Match": '"other"'})
    assert response.status_code == 200


async def test_if_modified_since(client, tenant, obj) -> None:
    last_modified = (await client.head(object_url("big.bin"), headers=tenant["headers"])).headers["last-modified"]
    assert (await get(client, tenant, {"If-Modified-Since": last_modified})).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (await get(client, tenant, {"If-Modified-Since": old})).status_code == 200
    assert (await get(client, tenant, {"If-Unmodified-Since": old})).status_code == 412


async def test_if_match_on_get(client, tenant, obj) -> None:
    assert (await get(client, tenant, {"If-Match": obj["etag"]})).status_code == 200
    response = await get(client, tenant, {"If-Match": '"other"'})
    assert response.status_code == 412
    assert (await get(client, tenant, {"If-Match": f"W/{obj['etag']}"})).status_code == 412  # strong comparison


async def test_put_if_none_match_star_creates_only(client, tenant, bucket) -> None:
    first = await put_object(client, tenant, "once", b"1", headers={"If-None-Match": "*"})
    assert first.status_code == 201
    second = await put_object(client, tenant, "once", b"2", headers={"If-None-Match": "*"})
    assert second.status_code == 412
    assert second.json()["code"] == "precondition_failed"
    assert (await get(client, tenant, {}, name="once")).content == b"1"


async def test_put_if_match_is_compare_and_swap(client, tenant, bucket, store) -> None:
    first = await put_ok(client, tenant, "cas", b"v1")
    stale = await put_object(client, tenant, "cas", b"v3", headers={"If-Match": '"' + "0" * 64 + '"'})
    assert stale.status_code == 412
    swapped = await put_object(client, tenant, "cas", b"v2", headers={"If-Match": first["etag"]})
    assert swapped.status_code == 200
    assert swapped.json()["sha256"] == hashlib.sha256(b"v2").hexdigest()
    missing = await put_object(client, tenant, "nothing-here", b"x", headers={"If-Match": "*"})
    assert missing.status_code == 412
    # Refused uploads leave no chunks behind: v2's chunk, and v1's waiting for the grace period.
    assert len(store.chunk_keys(tenant["tenant_id"])) == 2
    assert len(store.garbage(tenant["tenant_id"])) == 1


async def test_delete_if_match(client, tenant, bucket) -> None:
    obj = await put_ok(client, tenant, "d", b"x")
    response = await client.delete(object_url("d"), headers={**tenant["headers"], "If-Match": '"nope"'})
    assert response.status_code == 412
    response = await client.delete(object_url("d"), headers={**tenant["headers"], "If-Match": obj["etag"]})
    assert response.status_code == 200
