"""Objects go in and come out byte for byte, at every size around the chunk boundaries."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.objects import API, CHUNK, object_url, payload, put_object, put_ok, stream_body

pytestmark = pytest.mark.contract

SIZES = {
    "empty": 0,
    "one_byte": 1,
    "exactly_one_chunk": CHUNK,
    "chunk_plus_one": CHUNK + 1,
    "multi_chunk": 3 * CHUNK + CHUNK // 2,
}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_round_trip_is_byte_for_byte(client, tenant, bucket, store, size) -> None:
    data = payload(size, seed=size % 97)
    body = await put_ok(client, tenant, "dir/sub/file.bin", data)
    sha = hashlib.sha256(data).hexdigest()
    assert body["size"] == size
    assert body["sha256"] == sha
    assert body["etag"] == f'"{sha}"'
    assert body["chunks"] == -(-size // CHUNK)
    assert body["chunk_size"] == CHUNK
    assert body["version"] == 1

    response = await client.get(object_url("dir/sub/file.bin"), headers=tenant["headers"])
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(size)
    assert response.headers["etag"] == f'"{sha}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"].endswith("GMT")
    assert len(store.chunk_keys(tenant["tenant_id"])) == body["chunks"]


async def test_chunked_request_body_without_content_length(client, tenant, bucket) -> None:
    data = payload(2 * CHUNK + 5)
    response = await client.put(object_url("streamed"), content=stream_body(data), headers=tenant["headers"])
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(data)
    assert (await client.get(object_url("streamed"), headers=tenant["headers"])).content == data


async def test_content_type_description_and_metadata_are_kept(client, tenant, bucket) -> None:
    headers = {
        "Content-Type": "text/plain",
        "X-Object-Description": "the report",
        "X-Object-Meta-Owner": "alice",
        "X-Object-Meta-Build": "42",
    }
    body = await put_ok(client, tenant, "report.txt", b"hello", headers=headers)
    assert body["content_type"] == "text/plain"
    assert body["description"] == "the report"
    assert body["metadata"] == {"owner": "alice", "build": "42"}
    for method in ("GET", "HEAD"):
        response = await client.request(method, object_url("report.txt"), headers=tenant["headers"])
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain"  # no charset added
        assert response.headers["x-object-description"] == "the report"
        assert response.headers["x-object-meta-owner"] == "alice"
        assert response.headers["x-object-meta-build"] == "42"
        assert response.headers["content-length"] == "5"
        assert response.content == (b"hello" if method == "GET" else b"")


async def test_default_content_type_is_octet_stream(client, tenant, bucket) -> None:
    await client.put(object_url("raw"), content=b"x", headers={**tenant["headers"], "Content-Type": ""})
    response = await client.head(object_url("raw"), headers=tenant["headers"])
    assert response.headers["content-type"] == "application/octet-stream"


async def test_overwrite_answers_200_and_bumps_the_version(client, tenant, bucket, store) -> None:
    first = await put_object(client, tenant, "doc", payload(CHUNK * 2))
    assert first.status_code == 201
    second = await put_object(client, tenant, "doc", b"short")
    assert second.status_code == 200
    assert second.json()["version"] == 2
    assert second.json()["created_at"] == first.json()["created_at"]
    assert (await client.get(object_url("doc"), headers=tenant["headers"])).content == b"short"
    # The old version's two chunks wait in the garbage set for the grace period.
    assert len(store.garbage(tenant["tenant_id"])) == 1
    assert len(store.chunk_keys(tenant["tenant_id"])) == 3


async def test_bucket_and_usage_count_objects_and_bytes(client, tenant, bucket, sync_redis) -> None:
    await put_ok(client, tenant, "a", payload(100))
    await put_ok(client, tenant, "b", payload(CHUNK + 1))
    await put_ok(client, tenant, "a", payload(50))  # overwrite: bytes change, count does not
    await client.delete(object_url("b"), headers=tenant["headers"])
    await put_ok(client, tenant, "c", payload(7))
    buckets = (await client.get(f"{API}/buckets", headers=tenant["headers"])).json()["items"]
    assert [(b["name"], b["objects"], b["bytes"], b["chunk_size"]) for b in buckets] == [("files", 2, 57, CHUNK)]
    from app.platform.keyspace import KeySchema

    usage = sync_redis.hgetall(KeySchema(tenant["tenant_id"]).usage())
    assert int(usage[b"objects"]) == 2
    assert int(usage[b"object_bytes"]) == 57


async def test_delete_then_get_is_404(client, tenant, bucket) -> None:
    await put_ok(client, tenant, "gone", b"x")
    response = await client.delete(object_url("gone"), headers=tenant["headers"])
    assert response.status_code == 200
    assert "message" in response.json()
    for method in ("GET", "DELETE"):
        response = await client.request(method, object_url("gone"), headers=tenant["headers"])
        assert response.status_code == 404
        assert response.json()["code"] == "object_not_found"


async def test_object_operations_are_counted_in_metrics(client, tenant, bucket) -> None:
    await put_ok(client, tenant, "counted", b"x")
    await client.get(object_url("nope"), headers=tenant["headers"])
    metrics = (await client.get("/metrics")).text
    assert 'kvstore_operations_total{operation="object_put",status="ok"}' in metrics
    assert 'kvstore_operations_total{operation="object_get",status="object_not_found"}' in metrics
