"""Issue #14: every byte a tenant can make the object store keep counts against max_object_bytes
or is capped by it: parts of unfinished multipart uploads, uploads in progress, and replaced or
deleted versions awaiting collection (GET /usage shows each figure)."""

from __future__ import annotations

import pytest

from app.platform.keyspace import KeySchema
from tests.objects.conftest import API, CHUNK, BUCKET, Store, object_url, payload, put_object

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
