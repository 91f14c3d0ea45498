"""Buckets, listing, names, size limits and tenant isolation."""

from __future__ import annotations

import pytest

from app.main import create_app
from app.platform.keyspace import KeySchema
from tests.support.apps import serve
from tests.support.objects import API, CHUNK, object_url, payload, put_object, put_ok, stream_body
from tests.support.tenants import register

pytestmark = pytest.mark.contract


async def test_bucket_create_list_and_validation(client, tenant) -> None:
    headers = tenant["headers"]
    made = await client.post(f"{API}/buckets", json={"name": "photos", "description": "holiday"}, headers=headers)
    assert made.status_code == 201
    assert made.json()["chunk_size"] == 1_048_576
    assert made.json()["max_object_size"] is None
    again = await client.post(f"{API}/buckets", json={"name": "photos"}, headers=headers)
    assert again.status_code == 409
    assert again.json()["code"] == "bucket_exists"
    for bad in ({"name": "Upper"}, {"name": "-dash"}, {"name": "a" * 64}, {"name": "ok", "chunk_size": 1000},
                {"name": "ok", "chunk_size": 16 * 1024 * 1024}, {"name": "ok", "extra": 1}):  # fmt: skip
        response = await client.post(f"{API}/buckets", json=bad, headers=headers)
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
    listed = (await client.get(f"{API}/buckets", headers=headers)).json()["items"]
    assert [(b["name"], b["description"], b["objects"], b["bytes"]) for b in listed] == [("photos", "holiday", 0, 0)]


async def test_delete_bucket_refuses_while_it_holds_objects(client, tenant, bucket) -> None:
    await put_ok(client, tenant, "keep", b"x")
    response = await client.delete(f"{API}/buckets/{bucket}", headers=tenant["headers"])
    assert response.status_code == 409
    assert response.json()["code"] == "bucket_not_empty"
    await client.delete(object_url("keep"), headers=tenant["headers"])
    assert (await client.delete(f"{API}/buckets/{bucket}", headers=tenant["headers"])).status_code == 200
    assert (await client.get(f"{API}/buckets", headers=tenant["headers"])).json()["items"] == []
    assert (await client.delete(f"{API}/buckets/{bucket}", headers=tenant["headers"])).status_code == 404


async def test_force_delete_drops_objects_and_the_worker_frees_their_chunks(client, tenant, bucket, store) -> None:
    tid = tenant["tenant_id"]
    for i in range(5):
        await put_ok(client, tenant, f"o{i}", payload(CHUNK + i))
    response = await client.delete(f"{API}/buckets/{bucket}?force=true", headers=tenant["headers"])
    assert response.status_code == 200
    usage = store.client.hgetall(KeySchema(tid).usage())
    assert (int(usage[b"objects"]), int(usage[b"object_bytes"])) == (0, 0)
    # A bucket of the same name starts empty at once, while the old objects are still being purged.
    await client.post(f"{API}/buckets", json={"name": bucket, "chunk_size": CHUNK}, headers=tenant["headers"])
    assert (await client.get(object_url("o1"), headers=tenant["headers"])).status_code == 404
    assert (await client.get(f"{API}/buckets/{bucket}/objects", headers=tenant["headers"])).json()["items"] == []
    assert len(store.chunk_keys(tid)) == 9  # o0 is exactly one chunk, the others two
    store.collect()
    assert store.chunk_keys(tid) == []
    assert store.garbage(tid) == []
    assert store.keys(tid, "o") == []


async def test_list_is_in_name_order_with_prefix_and_cursor(client, tenant, bucket) -> None:
    names = ["a/1", "a/2", "a/3", "b/1", "a/10", "ab", "c"]
    for name in names:
        await put_ok(client, tenant, name, name.encode())
    url = f"{API}/buckets/{bucket}/objects"
    everything = (await client.get(url, headers=tenant["headers"])).json()
    assert [i["name"] for i in everything["items"]] == sorted(names)
    assert everything["next_cursor"] is None
    item = everything["items"][0]
    assert set(item) == {"name", "size", "etag", "content_type", "updated_at"}
    assert item["size"] == 3

    seen, cursor = [], None
    while True:
        params = {"prefix": "a/", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(url, params=params, headers=tenant["headers"])).json()
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["a/1", "a/10", "a/2", "a/3"]
    assert (await client.get(url, params={"limit": 0}, headers=tenant["headers"])).status_code == 422
    missing = await client.get(f"{API}/buckets/nope/objects", headers=tenant["headers"])
    assert missing.status_code == 404
    assert missing.json()["code"] == "bucket_not_found"


BAD_NAMES = ["a%00b", "line%0Abreak", "tab%09", "%2E%2E/etc", "a/%2E%2E/b", "a/%2E/b", "%2E%2E", "x/verify",
             "x/uploads", "x/uploads/abc", "x/uploads/abc/complete", "é" * 513]  # fmt: skip


async def test_bad_object_names_are_422(client, tenant, bucket) -> None:
    for name in BAD_NAMES:
        response = await put_object(client, tenant, name, b"x")
        assert response.status_code == 422, (name, response.text)
        assert response.json()["code"] == "validation_error"


async def test_long_and_unicode_names_within_1024_bytes(client, tenant, bucket) -> None:
    name = "dir/" + "é" * 510  # 4 + 1020 bytes
    await put_ok(client, tenant, name, b"ok")
    assert (await client.get(object_url(name), headers=tenant["headers"])).content == b"ok"
    assert (await put_object(client, tenant, name + "x", b"x")).status_code == 422


async def test_bad_bucket_name_in_path_is_422(client, tenant) -> None:
    response = await client.put(f"{API}/buckets/UPPER/objects/x", content=b"x", headers=tenant["headers"])
    assert response.status_code == 422


async def test_unknown_bucket_is_404(client, tenant) -> None:
    response = await put_object(client, tenant, "x", b"x", bucket="nope")
    assert response.status_code == 404
    assert response.json()["code"] == "bucket_not_found"


async def test_content_length_over_the_limit_is_refused_before_reading(settings, tenant, store) -> None:
    app = create_app(settings.model_copy(update={"max_object_bytes": 100_000}))
    read = []

    async def body():
        read.append(True)
        yield b"x" * 200_000

    async with serve(app) as client:
        alice = await register(client, "bob")
        headers = {"Authorization": f"Bearer {alice['access_token']}"}
        await client.post(f"{API}/buckets", json={"name": "b", "chunk_size": CHUNK}, headers=headers)
        response = await client.put(
            f"{API}/buckets/b/objects/big", content=body(), headers={**headers, "Content-Length": "200000"}
        )
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert "100000" in response.json()["detail"]
        assert read == []  # refused on the header alone
        assert store.chunk_keys(alice["tenant_id"]) == []
        assert store.garbage(alice["tenant_id"]) == []


async def test_body_growing_past_the_limit_is_cut_off_and_nothing_is_stored(client, tenant, store) -> None:
    headers = tenant["headers"]
    made = await client.post(
        f"{API}/buckets", json={"name": "small", "chunk_size": CHUNK, "max_object_size": 3 * CHUNK}, headers=headers
    )
    assert made.json()["max_object_size"] == 3 * CHUNK
    response = await client.put(
        f"{API}/buckets/small/objects/too-big", content=stream_body(payload(4 * CHUNK)), headers=headers
    )
    assert response.status_code == 413
    assert (await client.get(f"{API}/buckets/small/objects/too-big", headers=headers)).status_code == 404
    assert store.chunk_keys(tenant["tenant_id"]) == []
    assert store.garbage(tenant["tenant_id"]) == []
    assert store.keys(tenant["tenant_id"], "up") == []
    exact = await client.put(f"{API}/buckets/small/objects/fits", content=payload(3 * CHUNK), headers=headers)
    assert exact.status_code == 201


async def test_metadata_over_the_limit_is_422(client, tenant, bucket) -> None:
    headers = {"X-Object-Meta-Big": "v" * 9000}
    response = await put_object(client, tenant, "m", b"x", headers=headers)
    assert response.status_code == 422
    assert "8192" in response.json()["detail"]


async def test_tenants_do_not_see_each_others_objects(client, tenant, bucket) -> None:
    await put_ok(client, tenant, "secret", b"alice's")
    bob = await register(client, "bob")
    bob_headers = {"Authorization": f"Bearer {bob['access_token']}"}
    assert (await client.get(f"{API}/buckets", headers=bob_headers)).json()["items"] == []
    assert (await client.get(object_url("secret"), headers=bob_headers)).status_code == 404
    # Bob's bucket of the same name is his own.
    await client.post(f"{API}/buckets", json={"name": bucket, "chunk_size": CHUNK}, headers=bob_headers)
    assert (await client.get(object_url("secret"), headers=bob_headers)).status_code == 404
    await client.put(object_url("secret"), content=b"bob's", headers=bob_headers)
    assert (await client.get(object_url("secret"), headers=tenant["headers"])).content == b"alice's"
    assert (await client.get(object_url("secret"), headers=bob_headers)).content == b"bob's"
    assert (await client.get(object_url("secret"))).status_code == 401
