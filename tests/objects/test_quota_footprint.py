"""Issue #14: every byte a tenant can make the object store keep counts against max_object_bytes
or is capped by it: parts of unfinished multipart uploads, uploads in progress, and replaced or
deleted versions awaiting collection (GET /usage shows each figure)."""

from __future__ import annotations

from types import SimpleNamespace

from app.platform.keyspace import KeySchema
from tests.support.objects import CHUNK, Store, object_url, payload, put_object

MIB = 1_048_576
FOOTPRINT_FACTOR = 3  # README "Quotas, rate limits and usage"


def chunk_bytes(store: Store, tenant_id: str) -> int:
    """Bytes of every chunk the tenant has in Redis (the content, whatever references it)."""
    return sum(store.client.strlen(key) for key in store.chunk_keys(tenant_id))


async def set_quota(store: Store, tenant_id: str, limit: int) -> None:
    store.client.hset(KeySchema(tenant_id).limits(), "max_object_bytes", limit)


async def usage(client, tenant) -> dict:
    response = await client.get("/api/v1/usage", headers=tenant["headers"])
    assert response.status_code == 200, response.text
    return response.json()


async def start_upload(client, tenant, name: str) -> str:
    response = await client.post(object_url(name) + "/uploads", headers=tenant["headers"])
    assert response.status_code == 201, response.text
    return response.json()["upload_id"]


async def put_part(client, tenant, name: str, upload: str, number: int, data: bytes, **kw):
    url = f"{object_url(name)}/uploads/{upload}/parts/{number}"
    return await client.put(url, content=data, headers=tenant["headers"], **kw)


async def test_parts_of_unfinished_uploads_count_against_the_object_quota(client, tenant, bucket, store) -> None:
    """The issue's scenario: 16 parts of 1 MiB in two uploads against a 1 MiB quota."""
    await set_quota(store, tenant["tenant_id"], MIB)
    statuses = []
    for name in ("a", "b"):
        upload = await start_upload(client, tenant, name)
        for number in range(1, 9):
            statuses.append((await put_part(client, tenant, name, upload, number, payload(MIB, number))).status_code)
    stored = chunk_bytes(store, tenant["tenant_id"])
    print(f"\n16 x 1 MiB parts, quota 1 MiB: {statuses.count(200)} accepted, {stored} chunk bytes in Redis")
    assert statuses[0] == 200 and statuses.count(200) == 1
    assert set(statuses[1:]) == {413}
    assert stored <= MIB  # a refused part left nothing behind
    figures = await usage(client, tenant)
    assert figures["object_pending_bytes"] == MIB
    assert figures["object_garbage_bytes"] == 0


async def test_aborting_or_expiring_an_upload_releases_its_bytes(client, tenant, bucket, store) -> None:
    tid = tenant["tenant_id"]
    await set_quota(store, tid, 4 * CHUNK)
    upload = await start_upload(client, tenant, "m")
    for number in (1, 2):
        assert (await put_part(client, tenant, "m", upload, number, payload(CHUNK))).status_code == 200
    # A part sent again replaces the first: the old bytes are garbage, not pending.
    assert (await put_part(client, tenant, "m", upload, 2, payload(CHUNK, 1))).status_code == 200
    figures = await usage(client, tenant)
    assert (figures["object_pending_bytes"], figures["object_garbage_bytes"]) == (2 * CHUNK, CHUNK)
    assert (await client.delete(f"{object_url('m')}/uploads/{upload}", headers=tenant["headers"])).status_code == 200
    store.collect()
    figures = await usage(client, tenant)
    assert (figures["object_pending_bytes"], figures["object_garbage_bytes"]) == (0, 0)
    assert store.chunk_keys(tid) == []

    abandoned = await start_upload(client, tenant, "m")
    assert (await put_part(client, tenant, "m", abandoned, 1, payload(CHUNK))).status_code == 200
    assert (await usage(client, tenant))["object_pending_bytes"] == CHUNK
    store.collect(ahead_ms=2 * 86_400_000)  # past the upload's expiry
    figures = await usage(client, tenant)
    assert (figures["object_pending_bytes"], figures["object_garbage_bytes"]) == (0, 0)


async def test_a_refused_part_or_put_stores_nothing(client, tenant, bucket, store) -> None:
    tid = tenant["tenant_id"]
    await set_quota(store, tid, 2 * CHUNK)
    upload = await start_upload(client, tenant, "m")
    assert (await put_part(client, tenant, "m", upload, 1, payload(CHUNK))).status_code == 200
    # Declared length: refused before the part is registered; streamed (no length): refused at
    # the chunk that would pass, and what was written is discarded at once.
    big = payload(2 * CHUNK)
    assert (await put_part(client, tenant, "m", upload, 2, big)).status_code == 413

    async def streamed():
        for i in range(0, len(big), 10_000):
            yield big[i : i + 10_000]

    assert (await put_part(client, tenant, "m", upload, 2, streamed())).status_code == 413
    assert (await client.put(object_url("p"), content=streamed(), headers=tenant["headers"])).status_code == 413
    assert chunk_bytes(store, tid) == CHUNK
    figures = await usage(client, tenant)
    assert (figures["object_pending_bytes"], figures["object_garbage_bytes"]) == (CHUNK, 0)


async def test_churn_is_bounded_by_the_footprint_factor(client, tenant, bucket, store) -> None:
    """Replacing and deleting within the grace period piles up garbage: held bytes stay within
    FOOTPRINT_FACTOR x the quota, then writes are refused until the collector catches up."""
    tid = tenant["tenant_id"]
    quota = 4 * CHUNK
    await set_quota(store, tid, quota)
    refused = None
    for i in range(40):
        response = await put_object(client, tenant, f"o{i % 2}", payload(2 * CHUNK, i))
        if response.status_code == 413:
            refused = response.json()
            break
        assert response.status_code in (200, 201), response.text
        assert chunk_bytes(store, tid) <= FOOTPRINT_FACTOR * quota
    print(f"\nchurn with quota {quota}: refused after {i} PUTs, {chunk_bytes(store, tid)} chunk bytes held")
    assert refused is not None and refused["quota"] == "max_object_footprint_bytes"
    assert refused["limit"] == FOOTPRINT_FACTOR * quota
    figures = await usage(client, tenant)
    assert figures["object_bytes"] + figures["object_garbage_bytes"] == chunk_bytes(store, tid)
    store.collect()  # past the grace period: the garbage goes, writes pass again
    assert (await usage(client, tenant))["object_garbage_bytes"] == 0
    assert (await put_object(client, tenant, "o0", payload(2 * CHUNK))).status_code == 200


async def test_complete_checks_conditions_and_quota_before_hashing(client, tenant, bucket, store, monkeypatch) -> None:
    import hashlib

    from app.objects import multipart

    upload = await start_upload(client, tenant, "m")
    assert (await put_part(client, tenant, "m", upload, 1, payload(CHUNK))).status_code == 200
    hashed = []

    class Spy:
        def __init__(self) -> None:
            self._digest = hashlib.sha256()

        def update(self, data: bytes) -> None:
            hashed.append(len(data))
            self._digest.update(data)

        def hexdigest(self) -> str:
            return self._digest.hexdigest()

    monkeypatch.setattr(multipart, "hashlib", SimpleNamespace(sha256=Spy))
    url = f"{object_url('m')}/uploads/{upload}/complete"
    refused = await client.post(url, json={"parts": [1]}, headers={**tenant["headers"], "If-Match": '"abc"'})
    assert refused.status_code == 412
    await set_quota(store, tenant["tenant_id"], CHUNK // 2)
    assert (await client.post(url, json={"parts": [1]}, headers=tenant["headers"])).status_code == 413
    assert hashed == []
    await set_quota(store, tenant["tenant_id"], 0)
    assert (await client.post(url, json={"parts": [1]}, headers=tenant["headers"])).status_code == 201
    assert sum(hashed) == CHUNK
    figures = await usage(client, tenant)
    assert (figures["object_bytes"], figures["object_pending_bytes"]) == (CHUNK, 0)


async def test_verify_of_an_unchanged_version_does_not_rehash(client, tenant, bucket, store, monkeypatch) -> None:
    from app.objects import service

    data = payload(3 * CHUNK)
    await put_object(client, tenant, "v", data)
    url = object_url("v") + "/verify"
    first = (await client.get(url, headers=tenant["headers"])).json()
    assert first["valid"] is True

    def no_hashing(*args, **kwargs):
        raise AssertionError("re-hashed an unchanged version")

    monkeypatch.setattr(service, "hashlib", SimpleNamespace(sha256=no_hashing))
    again = (await client.get(url, headers=tenant["headers"])).json()
    assert again == first
    # A missing chunk still shows at once (its length is checked): then it is hashed again.
    monkeypatch.undo()
    meta = store.meta(tenant["tenant_id"], bucket, "v")
    store.client.delete(KeySchema(tenant["tenant_id"]).chunk(meta[b"segs"].split(b":")[0].decode(), 2))
    gone = (await client.get(url, headers=tenant["headers"])).json()
    assert (gone["valid"], gone["missing_chunks"]) == (False, 1)


async def test_uploads_of_a_redis_written_before_the_counters_never_go_negative(client, tenant, bucket, store) -> None:
    """Parts and garbage written before these counters existed were never counted: releasing them
    leaves the counters at 0, not below."""
    tid = tenant["tenant_id"]
    schema = KeySchema(tid)
    upload = await start_upload(client, tenant, "m")
    assert (await put_part(client, tenant, "m", upload, 1, payload(CHUNK))).status_code == 200
    await put_object(client, tenant, "o", payload(CHUNK))
    # As an older version left them: no pbytes on the upload, no held-bytes counters.
    store.client.hdel(schema.upload(upload), "pbytes")
    store.client.hdel(schema.usage(), "object_pending_bytes", "object_garbage_bytes")
    assert (await client.delete(object_url("o"), headers=tenant["headers"])).status_code == 200
    store.client.hdel(schema.usage(), "object_garbage_bytes")  # the deleted version: uncounted garbage
    assert (await client.delete(f"{object_url('m')}/uploads/{upload}", headers=tenant["headers"])).status_code == 200
    store.collect()
    figures = await usage(client, tenant)
    assert (figures["object_pending_bytes"], figures["object_garbage_bytes"]) == (0, 0)
    assert store.chunk_keys(tid) == []


async def test_an_empty_part_sent_again_is_replaced(client, tenant, bucket) -> None:
    """Found by the fuzzer: replacing a part that counted 0 bytes must not send HINCRBY a "-0"."""
    upload = await start_upload(client, tenant, "m")
    for data in (b"", b"", b"xo", b""):
        response = await put_part(client, tenant, "m", upload, 1, data)
        assert response.status_code == 200, response.text
    assert (await usage(client, tenant))["object_pending_bytes"] == 0
