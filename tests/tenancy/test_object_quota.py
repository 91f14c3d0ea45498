"""The object bytes quota (checked atomically when an upload commits) and exact object usage."""

from __future__ import annotations

import asyncio

import pytest

from app.platform.keyspace import KeySchema
from tests.support.apps import app_client
from tests.support.objects import CHUNK, payload, stream_body
from tests.support.quotas import Tenant, assert_quota_problem
from tests.support.tenants import register

pytestmark = pytest.mark.contract

OBJECTS = "/objects/buckets"


def object_path(name: str, bucket: str = "files") -> str:
    return f"{OBJECTS}/{bucket}/objects/{name}"


async def make_bucket(tenant: Tenant, name: str = "files") -> None:
    response = await tenant.call("POST", OBJECTS, json={"name": name, "chunk_size": CHUNK})
    assert response.status_code == 201, response.text


async def put_object(tenant: Tenant, name: str, size: int, bucket: str = "files"):
    return await tenant.call("PUT", object_path(name, bucket), content=payload(size, seed=size % 7))


async def must_put(tenant: Tenant, name: str, size: int, bucket: str = "files") -> None:
    response = await put_object(tenant, name, size, bucket)
    assert response.status_code in (200, 201), response.text


async def object_usage(tenant: Tenant) -> tuple[int, int]:
    usage = await tenant.usage()
    return usage["objects"], usage["object_bytes"]


async def test_object_bytes_exactly_at_the_limit_pass_one_byte_more_is_413(alice, usage_service, store) -> None:
    await make_bucket(alice)
    await usage_service.set_limits(alice.id, {"max_object_bytes": 1000})
    await must_put(alice, "a", 600)
    await must_put(alice, "b", 400)
    assert await object_usage(alice) == (2, 1000)

    assert_quota_problem(await put_object(alice, "c", 1), 413, "max_object_bytes", 1000, 1000)
    assert (await alice.call("HEAD", object_path("c"))).status_code == 404
    # Growing an object by a byte is refused; the same size, smaller, or empty passes.
    assert_quota_problem(await put_object(alice, "a", 601), 413, "max_object_bytes", 1000, 1000)
    assert (await alice.call("GET", object_path("a"))).content == payload(600, seed=600 % 7)
    await must_put(alice, "a", 600)
    await must_put(alice, "a", 500)
    await must_put(alice, "empty", 0)
    assert await object_usage(alice) == (3, 900)
    await must_put(alice, "c", 100)  # the freed bytes can be used again
    assert await object_usage(alice) == (4, 1000)
    # The refused uploads left nothing behind once the collector ran.
    store.collect()
    assert len(store.chunk_keys(alice.id)) == store.live_chunks(alice.id)


async def test_deleting_an_object_gives_its_bytes_back(alice, usage_service) -> None:
    await make_bucket(alice)
    await usage_service.set_limits(alice.id, {"max_object_bytes": 2 * CHUNK})
    await must_put(alice, "big", 2 * CHUNK)
    assert (await put_object(alice, "more", 10)).status_code == 413
    assert (await alice.call("DELETE", object_path("big"))).status_code == 200
    assert await object_usage(alice) == (0, 0)
    await must_put(alice, "more", 2 * CHUNK)


async def test_the_settings_default_applies_and_an_override_beats_it(settings, usage_service) -> None:
    async with app_client(settings.model_copy(update={"quota_max_object_bytes": 100})) as http:
        tenant = Tenant(http, await register(http, "carol"))
        await make_bucket(tenant)
        await must_put(tenant, "a", 100)
        assert_quota_problem(await put_object(tenant, "b", 1), 413, "max_object_bytes", 100, 100)
        assert (await tenant.usage())["limits"]["max_object_bytes"] == 100
        await usage_service.set_limits(tenant.id, {"max_object_bytes": 0})  # unlimited
        await must_put(tenant, "b", 3 * CHUNK)
        assert await object_usage(tenant) == (2, 100 + 3 * CHUNK)


async def test_racing_uploads_never_overshoot_the_object_quota(alice, usage_service) -> None:
    await make_bucket(alice)
    size = 10_000
    await usage_service.set_limits(alice.id, {"max_object_bytes": 3 * size + size // 2})

    responses = await asyncio.gather(*(put_object(alice, f"race{i}", size) for i in range(10)))

    assert sorted(r.status_code for r in responses) == [201] * 3 + [413] * 7
    assert await object_usage(alice) == (3, 3 * size)


async def test_completing_a_multipart_upload_is_checked_and_can_be_retried(alice, usage_service) -> None:
    await make_bucket(alice)
    await must_put(alice, "old", CHUNK)
    # Parts count against the quota while they wait (issue #14): they fit 3 chunks; the quota is
    # lowered below what completing adds before the completion.
    await usage_service.set_limits(alice.id, {"max_object_bytes": 3 * CHUNK})
    started = await alice.call("POST", object_path("multi") + "/uploads")
    assert started.status_code == 201, started.text
    upload = started.json()["upload_id"]
    for number, size in ((1, CHUNK), (2, 10)):
        part = await alice.call("PUT", f"{object_path('multi')}/uploads/{upload}/parts/{number}", content=payload(size))
        assert part.status_code == 200, part.text

    await usage_service.set_limits(alice.id, {"max_object_bytes": 2 * CHUNK})
    complete_url = f"{object_path('multi')}/uploads/{upload}/complete"
    refused = await alice.call("POST", complete_url, json={"parts": [1, 2]})
    assert_quota_problem(refused, 413, "max_object_bytes", 2 * CHUNK, CHUNK)
    assert (await alice.call("HEAD", object_path("multi"))).status_code == 404

    assert (await alice.call("DELETE", object_path("old"))).status_code == 200
    done = await alice.call("POST", complete_url, json={"parts": [1, 2]})
    assert done.status_code == 201, done.text
    assert await object_usage(alice) == (1, CHUNK + 10)


async def test_object_usage_is_exact_through_overwrite_delete_and_bucket_force_delete(
    alice, usage_service, store
) -> None:
    await make_bucket(alice, "keep")
    await make_bucket(alice, "drop")
    await must_put(alice, "k", 1000, bucket="keep")
    expected_keep = 1000
    for size in (5000, 10, 3 * CHUNK + 1, 0, 777):  # overwrites: bigger, smaller, multi-chunk, empty
        await must_put(alice, "x", size, bucket="keep")
        assert await object_usage(alice) == (2, expected_keep + size), size
    expected_keep += 777
    for i in range(4):
        await must_put(alice, f"d{i}", 100 * (i + 1), bucket="drop")
    assert await object_usage(alice) == (6, expected_keep + 1000)
    assert (await alice.call("DELETE", f"{OBJECTS}/drop/objects/d0")).status_code == 200
    assert await object_usage(alice) == (5, expected_keep + 900)

    drop_id = store.client.hget(KeySchema(alice.id).object_bucket("drop"), "id").decode()
    not_empty = await alice.call("DELETE", f"{OBJECTS}/drop")
    assert not_empty.status_code == 409
    assert (await alice.call("DELETE", f"{OBJECTS}/drop", params={"force": "true"})).status_code == 200
    assert await object_usage(alice) == (2, expected_keep)
    assert store.keys(alice.id, f"o:{drop_id}")  # still there for the worker
    store.collect()  # the worker purges the dropped bucket's objects: the usage was settled already
    assert not store.keys(alice.id, f"o:{drop_id}")
    assert await object_usage(alice) == (2, expected_keep)

    totals = await usage_service.recount(alice.id)
    assert (totals["objects"], totals["object_bytes"]) == (2, expected_keep)


async def test_a_declared_length_over_the_quota_is_refused_before_anything_is_stored(
    alice, usage_service, store
) -> None:
    await make_bucket(alice)
    await must_put(alice, "a", 600)
    await usage_service.set_limits(alice.id, {"max_object_bytes": 1000})
    chunks_before = set(store.chunk_keys(alice.id))

    async def body():
        for _ in range(5):
            yield b"x" * 1000

    refused = await alice.call("PUT", object_path("big"), content=body(), headers={"Content-Length": "5000"})
    assert_quota_problem(refused, 413, "max_object_bytes", 1000, 600)
    assert store.garbage(alice.id) == []  # no upload was even started
    assert set(store.chunk_keys(alice.id)) == chunks_before
    # Replacing `a` by 1000 bytes fits (600 are given back); without a length, the commit decides.
    await must_put(alice, "a", 1000)
    chunked = await alice.call("PUT", object_path("b"), content=stream_body(payload(2000)))
    assert_quota_problem(chunked, 413, "max_object_bytes", 1000, 1000)
    assert await object_usage(alice) == (1, 1000)
