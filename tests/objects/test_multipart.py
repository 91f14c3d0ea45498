"""Multipart uploads: parts in any order, retries, complete, abort, expiry, and compaction."""

from __future__ import annotations

import hashlib
import time

import pytest

from app.objects.tasks import compact_objects
from app.platform.keyspace import KeySchema
from tests.support.objects import CHUNK, object_url, payload

pytestmark = pytest.mark.contract

PARTS = [payload(CHUNK + 100, seed=1), payload(2 * CHUNK + 7, seed=2), payload(CHUNK // 3, seed=3)]
WHOLE = b"".join(PARTS)


async def start(client, tenant, name: str = "movie.mp4", headers: dict[str, str] | None = None) -> str:
    response = await client.post(object_url(name) + "/uploads", headers={**tenant["headers"], **(headers or {})})
    assert response.status_code == 201, response.text
    return response.json()["upload_id"]


async def put_part(client, tenant, upload_id: str, number: int, data: bytes, name: str = "movie.mp4"):
    url = f"{object_url(name)}/uploads/{upload_id}/parts/{number}"
    return await client.put(url, content=data, headers=tenant["headers"])


async def complete(client, tenant, upload_id: str, parts: list[int], name: str = "movie.mp4", headers=None):
    url = f"{object_url(name)}/uploads/{upload_id}/complete"
    return await client.post(url, json={"parts": parts}, headers={**tenant["headers"], **(headers or {})})


async def upload_all(client, tenant, upload_id: str) -> None:
    for number in (3, 1, 2):  # any order
        response = await put_part(client, tenant, upload_id, number, PARTS[number - 1])
        assert response.status_code == 200, response.text
        assert response.json()["sha256"] == hashlib.sha256(PARTS[number - 1]).hexdigest()


async def test_complete_makes_the_object_with_its_sha256(client, tenant, bucket, store) -> None:
    upload_id = await start(client, tenant, headers={"Content-Type": "video/mp4", "X-Object-Meta-Camera": "x100"})
    await upload_all(client, tenant, upload_id)
    assert (await client.get(object_url("movie.mp4"), headers=tenant["headers"])).status_code == 404  # not yet
    listed = (await client.get(f"{object_url('movie.mp4')}/uploads/{upload_id}", headers=tenant["headers"])).json()
    assert [(p["part_number"], p["size"]) for p in listed["parts"]] == [(i + 1, len(p)) for i, p in enumerate(PARTS)]

    response = await complete(client, tenant, upload_id, [1, 2, 3])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(WHOLE).hexdigest()
    assert body["size"] == len(WHOLE)
    assert body["content_type"] == "video/mp4"
    assert body["metadata"] == {"camera": "x100"}
    got = await client.get(object_url("movie.mp4"), headers=tenant["headers"])
    assert got.content == WHOLE
    assert got.headers["etag"] == body["etag"]
    ranged = await client.get(
        object_url("movie.mp4"), headers={**tenant["headers"], "Range": f"bytes={CHUNK}-{CHUNK + 300}"}
    )
    assert ranged.content == WHOLE[CHUNK : CHUNK + 301]  # across the boundary of parts 1 and 2
    verify = (await client.get(object_url("movie.mp4") + "/verify", headers=tenant["headers"])).json()
    assert verify["valid"] is True
    # The upload is gone once completed.
    assert (await complete(client, tenant, upload_id, [1, 2, 3])).status_code == 404
    # Uneven parts: 2 + 3 + 1 chunks, queued for compaction.
    assert int(store.meta(tenant["tenant_id"], bucket, "movie.mp4")[b"chunks"]) == 6


async def test_a_part_sent_again_replaces_the_earlier_one(client, tenant, bucket, store) -> None:
    upload_id = await start(client, tenant)
    await put_part(client, tenant, upload_id, 1, b"first try")
    await put_part(client, tenant, upload_id, 1, b"second")
    response = await complete(client, tenant, upload_id, [1])
    assert response.json()["size"] == 6
    assert (await client.get(object_url("movie.mp4"), headers=tenant["headers"])).content == b"second"
    store.collect()
    assert len(store.chunk_keys(tenant["tenant_id"])) == 1


async def test_complete_validates_the_part_list(client, tenant, bucket) -> None:
    upload_id = await start(client, tenant)
    await put_part(client, tenant, upload_id, 1, b"a")
    await put_part(client, tenant, upload_id, 2, b"b")
    for parts in ([2, 1], [1, 1], [1, 5], []):
        response = await complete(client, tenant, upload_id, parts)
        assert response.status_code == 422, parts
    response = await complete(client, tenant, upload_id, [2])  # a subset is fine; part 1 becomes garbage
    assert response.status_code == 201
    assert (await client.get(object_url("movie.mp4"), headers=tenant["headers"])).content == b"b"


async def test_complete_honours_if_none_match(client, tenant, bucket) -> None:
    await client.put(object_url("movie.mp4"), content=b"exists", headers=tenant["headers"])
    upload_id = await start(client, tenant)
    await put_part(client, tenant, upload_id, 1, b"new")
    response = await complete(client, tenant, upload_id, [1], headers={"If-None-Match": "*"})
    assert response.status_code == 412
    response = await complete(client, tenant, upload_id, [1])
    assert response.status_code == 200  # replaced
    assert response.json()["version"] == 2


async def test_unknown_or_foreign_upload_ids_are_404(client, tenant, bucket) -> None:
    upload_id = await start(client, tenant)
    for bad in ("0" * 32, "not-an-id", upload_id[:-1]):
        assert (await put_part(client, tenant, bad, 1, b"x")).status_code == 404
    # The upload belongs to movie.mp4, not to another name.
    assert (await put_part(client, tenant, upload_id, 1, b"x", name="other")).status_code == 404
    assert (await put_part(client, tenant, upload_id, 0, b"x")).status_code == 422
    assert (await put_part(client, tenant, upload_id, 10_001, b"x")).status_code == 422


async def test_abort_frees_every_part(client, tenant, bucket, store) -> None:
    upload_id = await start(client, tenant)
    await upload_all(client, tenant, upload_id)
    assert len(store.chunk_keys(tenant["tenant_id"])) == 6
    response = await client.delete(f"{object_url('movie.mp4')}/uploads/{upload_id}", headers=tenant["headers"])
    assert response.status_code == 200
    assert (await put_part(client, tenant, upload_id, 4, b"late")).status_code == 404
    assert (await complete(client, tenant, upload_id, [1])).status_code == 404
    store.collect(ahead_ms=0)  # aborted uploads go at once, no grace needed
    assert store.chunk_keys(tenant["tenant_id"]) == []
    assert store.keys(tenant["tenant_id"], "up") == []
    assert store.garbage(tenant["tenant_id"]) == []


async def test_unfinished_uploads_expire(client, tenant, bucket, store, settings) -> None:
    upload_id = await start(client, tenant)
    await upload_all(client, tenant, upload_id)
    store.collect(ahead_ms=settings.multipart_upload_expire_seconds * 1000 - 60_000)  # not yet
    assert len(store.chunk_keys(tenant["tenant_id"])) == 6
    store.collect(ahead_ms=settings.multipart_upload_expire_seconds * 1000 + 1000)
    assert store.chunk_keys(tenant["tenant_id"]) == []
    assert store.keys(tenant["tenant_id"], "up") == []
    assert (await put_part(client, tenant, upload_id, 1, b"x")).status_code == 404


async def test_compaction_rewrites_uniform_chunks_without_changing_the_bytes(
    immediate, client, tenant, bucket, store
) -> None:
    """In immediate mode the API's enqueue runs the task at once; the grace keeps the old parts."""
    tid = tenant["tenant_id"]
    upload_id = await start(client, tenant)
    await upload_all(client, tenant, upload_id)
    body = (await complete(client, tenant, upload_id, [1, 2, 3])).json()
    meta = store.meta(tid, bucket, "movie.mp4")
    assert b"," not in meta[b"segs"]  # one segment: compacted
    assert int(meta[b"chunks"]) == -(-len(WHOLE) // CHUNK) == 4
    got = await client.get(object_url("movie.mp4"), headers=tenant["headers"])
    assert got.content == WHOLE
    assert got.headers["etag"] == body["etag"]
    head = await client.head(object_url("movie.mp4"), headers=tenant["headers"])
    assert head.headers["x-object-version"] == "1"
    assert head.headers["last-modified"] == got.headers["last-modified"]
    assert len(store.chunk_keys(tid)) == 4 + 6  # the parts stay for the grace period
    store.collect()
    assert len(store.chunk_keys(tid)) == 4
    assert (await client.get(object_url("movie.mp4") + "/verify", headers=tenant["headers"])).json()["valid"]
    schema = KeySchema(tid)
    assert store.client.zrange(schema.object_compactions(), 0, -1) == []


async def test_compaction_does_not_swap_an_object_that_changed(immediate, client, tenant, bucket, store) -> None:
    tid = tenant["tenant_id"]
    upload_id = await start(client, tenant)
    await upload_all(client, tenant, upload_id)
    immediate.huey_immediate = False  # the enqueue goes to the (unused) queue: nothing compacts yet
    try:
        await complete(client, tenant, upload_id, [1, 2, 3])
    finally:
        immediate.huey_immediate = True
    # Overwritten before the worker gets to it: the compaction must leave the new version alone.
    await client.put(object_url("movie.mp4"), content=b"newer", headers=tenant["headers"])
    compact_objects(tid)
    assert (await client.get(object_url("movie.mp4"), headers=tenant["headers"])).content == b"newer"
    store.collect()
    assert len(store.chunk_keys(tid)) == 1
    assert store.garbage(tid) == []


async def test_the_periodic_pass_compacts_what_the_queue_missed(client, tenant, bucket, store) -> None:
    """No worker was told (the queue is not consumed here): the garbage pass finds the compaction."""
    tid = tenant["tenant_id"]
    upload_id = await start(client, tenant)
    await upload_all(client, tenant, upload_id)
    await complete(client, tenant, upload_id, [1, 2, 3])
    result = store.collect(ahead_ms=0)
    assert result.compacted == 1
    assert b"," not in store.meta(tid, bucket, "movie.mp4")[b"segs"]
    assert (await client.get(object_url("movie.mp4"), headers=tenant["headers"])).content == WHOLE
    store.collect()
    assert len(store.chunk_keys(tid)) == 4
    assert store.client.zscore("objects:gc:schedule", tid) is None  # nothing left to do
    assert time.time() > 0
