"""Idempotency-Key on KV and object writes (README "Idempotent writes"): a retry answers the stored
first response and never applies twice; a reuse with another request is 422; a retry while the first
runs is 409; keys are per tenant; a failure releases the key; no header, no change (and no Redis call)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError

from app.platform.errors import ServiceUnavailable
from app.platform.idempotency import PENDING, IdempotencyStore, StoredResponse
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis
from tests.support.api_keys import create_key, key_headers
from tests.support.apps import app_client
from tests.support.objects import object_url, payload
from tests.support.tenants import bearer, register

KV = "/api/v1/kv"


def idem(tenant: dict[str, Any], key: str) -> dict[str, str]:
    return {**bearer(tenant), "Idempotency-Key": key}


async def version(client: httpx.AsyncClient, tenant: dict[str, Any], key: str) -> int:
    response = await client.get(f"{KV}/{key}", headers=bearer(tenant))
    assert response.status_code == 200, response.text
    return int(response.json()["metadata"]["version"])


@pytest.mark.contract
async def test_a_retry_replays_the_first_response_and_writes_once(
    client: httpx.AsyncClient, tenant: dict, sync_redis: SyncDataRedis
) -> None:
    first = await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "retry-1"))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "retry-1"))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"] == '"1"'
    assert again.headers["content-type"] == first.headers["content-type"]
    assert await version(client, tenant, "k") == 1
    history = await client.get(f"{KV}/k/history", headers=bearer(tenant))
    assert len(history.json()["items"]) == 1
    # The record lives in the tenant's slot and expires after the window.
    record = IdempotencyStore.record_key(tenant["tenant_id"], b"retry-1")
    assert record.startswith(KeySchema(tenant["tenant_id"]).prefix)
    assert 86_000 < sync_redis.ttl(record) <= 86_400


async def test_without_the_header_nothing_changes_and_redis_is_not_asked(
    client: httpx.AsyncClient, tenant: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_redis(*_: Any) -> None:
        raise AssertionError("a request without Idempotency-Key reached the idempotency store")

    monkeypatch.setattr(IdempotencyStore, "reserve", no_redis)
    for expected in (1, 2):
        response = await client.put(f"{KV}/k", json={"value": 1}, headers=bearer(tenant))
        assert response.status_code in (200, 201)
        assert "idempotent-replayed" not in response.headers
        assert await version(client, tenant, "k") == expected


async def test_concurrent_duplicates_apply_once(client: httpx.AsyncClient, tenant: dict) -> None:
    responses = await asyncio.gather(
        *(client.post(KV, json={"key": "c", "value": "v"}, headers=idem(tenant, "burst")) for _ in range(10))
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    firsts = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(firsts) == 1, statuses  # a second create would have been 409 key_exists, never 201
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "idempotency_key_in_progress"
            assert response.headers["retry-after"] == "1"
        else:
            assert response.content == firsts[0].content
    assert await version(client, tenant, "c") == 1
    later = await client.post(KV, json={"key": "c", "value": "v"}, headers=idem(tenant, "burst"))
    assert later.status_code == 201 and later.headers["idempotent-replayed"] == "true"


async def test_a_retry_while_the_first_runs_is_409_and_never_applies(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = app.state.kv_service
    original = service.put
    entered, proceed = asyncio.Event(), asyncio.Event()

    async def slow_put(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await proceed.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(service, "put", slow_put)
    first = asyncio.create_task(client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "slow")))
    await entered.wait()
    second = await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "slow"))
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["code"] == "idempotency_key_in_progress"
    proceed.set()
    assert (await first).status_code == 201
    assert await version(client, tenant, "k") == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/k", {"value": 2}),  # another body
        ("PUT", "/other", {"value": 1}),  # another path
        ("PUT", "/k?ttl=60", {"value": 1}),  # another query
        ("DELETE", "/k", None),  # another method
    ],
)
async def test_the_key_with_another_request_is_422(
    client: httpx.AsyncClient, tenant: dict, method: str, path: str, body: Any
) -> None:
    first = await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "once"))
    assert first.status_code == 201
    reused = await client.request(method, KV + path, json=body, headers=idem(tenant, "once"))
    assert reused.status_code == 422, reused.text
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["code"] == "idempotency_key_reused"
    assert await version(client, tenant, "k") == 1
    assert (await client.get(f"{KV}/other", headers=bearer(tenant))).status_code == 404


async def test_another_tenants_same_key_is_independent(client: httpx.AsyncClient, tenant: dict) -> None:
    bob = await register(client, "bob")
    mine = await client.put(f"{KV}/k", json={"value": "alice"}, headers=idem(tenant, "shared"))
    theirs = await client.put(f"{KV}/k", json={"value": "alice"}, headers=idem(bob, "shared"))
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert (await client.get(f"{KV}/k", headers=bearer(bob))).json()["value"] == "alice"
    assert await version(client, bob, "k") == 1 and await version(client, tenant, "k") == 1


async def test_another_credential_of_the_tenant_never_receives_the_response(
    client: httpx.AsyncClient, tenant: dict
) -> None:
    key = await create_key(client, bearer(tenant))
    first = await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "mine"))
    assert first.status_code == 201
    other = await client.put(f"{KV}/k", json={"value": 1}, headers={**key_headers(key), "Idempotency-Key": "mine"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert await version(client, tenant, "k") == 1


async def test_an_object_put_is_replayed(client: httpx.AsyncClient, tenant: dict) -> None:
    created = await client.post("/api/v1/objects/buckets", json={"name": "files"}, headers=bearer(tenant))
    assert created.status_code == 201, created.text
    data = payload(200_000)
    headers = {**idem(tenant, "upload-1"), "Content-Type": "application/octet-stream"}
    first = await client.put(object_url("a.bin", "files"), content=data, headers=headers)
    assert first.status_code in (200, 201), first.text
    again = await client.put(object_url("a.bin", "files"), content=data, headers=headers)
    assert again.status_code == first.status_code
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content and again.headers.get("etag") == first.headers.get("etag")
    listing = await client.get("/api/v1/objects/buckets/files/objects", headers=bearer(tenant))
    assert listing.status_code == 200
    changed = await client.put(object_url("a.bin", "files"), content=data[:-1], headers=headers)
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"
    longer = await client.put(object_url("a.bin", "files"), content=data + b"x", headers=headers)
    assert longer.status_code == 422
    fetched = await client.get(object_url("a.bin", "files"), headers=bearer(tenant))
    assert fetched.content == data


async def test_a_5xx_releases_the_key_so_a_retry_applies(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = app.state.kv_service
    original = service.put
    failures = [ServiceUnavailable("try again"), RuntimeError("boom")]

    async def flaky_put(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return await original(*args, **kwargs)

    monkeypatch.setattr(service, "put", flaky_put)
    assert (await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "flaky"))).status_code == 503
    assert (await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "flaky"))).status_code == 500
    applied = await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "flaky"))
    assert applied.status_code == 201 and "idempotent-replayed" not in applied.headers
    replayed = await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "flaky"))
    assert replayed.status_code == 201 and replayed.headers["idempotent-replayed"] == "true"
    assert await version(client, tenant, "k") == 1


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (RedisConnectionError("gone"), 503, "storage_unavailable"),
        (OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."), 507, "storage_full"),
        (ResponseError("ERR Error running script: a bug"), 500, "internal_error"),
    ],
)
async def test_a_store_error_is_answered_as_every_redis_error_is(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: dict,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    code: str,
) -> None:
    """Unreachable 503, full 507, and an error reply (a bug) 500, as the API answers them elsewhere;
    the write does not run."""

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(app.state.idempotency, "reserve", failing)
    response = await client.put(f"{KV}/k", json={"value": 1}, headers=idem(tenant, "broken"))
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert (await client.get(f"{KV}/k", headers=bearer(tenant))).status_code == 404


async def test_a_4xx_answer_is_stored_like_any_other(client: httpx.AsyncClient, tenant: dict) -> None:
    await client.put(f"{KV}/k", json={"value": 1}, headers=bearer(tenant))
    headers = {**idem(tenant, "cas"), "If-Match": '"7"'}
    first = await client.put(f"{KV}/k", json={"value": 2}, headers=headers)
    assert first.status_code == 412
    again = await client.put(f"{KV}/k", json={"value": 2}, headers=headers)
    assert again.status_code == 412 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["code"] == first.json()["code"]


@pytest.mark.parametrize(
    "value",
    [b"", b" ", b"a" * 256, b" lead", b"trail ", "é".encode(), b"tab\there", b"nul\x00", b"\x7f"],
    ids=["empty", "space", "256", "lead", "trail", "utf8", "tab", "nul", "del"],
)
async def test_a_hostile_key_is_422_and_nothing_is_written(
    client: httpx.AsyncClient, tenant: dict, value: bytes
) -> None:
    headers = [(b"authorization", f"Bearer {tenant['access_token']}".encode()), (b"idempotency-key", value)]
    response = await client.put(f"{KV}/k", json={"value": 1}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert (await client.get(f"{KV}/k", headers=bearer(tenant))).status_code == 404


async def test_two_keys_on_one_request_are_422(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = [
        (b"authorization", f"Bearer {tenant['access_token']}".encode()),
        (b"idempotency-key", b"a"),
        (b"idempotency-key", b"b"),
    ]
    assert (await client.put(f"{KV}/k", json={"value": 1}, headers=headers)).status_code == 422


async def test_the_longest_key_and_every_printable_character_are_accepted(
    client: httpx.AsyncClient, tenant: dict
) -> None:
    for key in ("x" * 255, "".join(chr(c) for c in range(0x21, 0x7F)), "a b"):
        response = await client.post(KV, json={"key": f"k{len(key)}", "value": 1}, headers=idem(tenant, key))
        assert response.status_code == 201, response.text


async def test_without_a_good_credential_the_route_answers_401(client: httpx.AsyncClient) -> None:
    response = await client.put(
        f"{KV}/k", json={"value": 1}, headers={"Authorization": "Bearer nope", "Idempotency-Key": "x"}
    )
    assert response.status_code == 401
    assert (await client.put(f"{KV}/k", json={"value": 1}, headers={"Idempotency-Key": "x"})).status_code == 401


async def test_reads_and_other_routes_ignore_the_header(client: httpx.AsyncClient, tenant: dict) -> None:
    await client.put(f"{KV}/k", json={"value": 1}, headers=bearer(tenant))
    for _ in range(2):
        response = await client.get(f"{KV}/k", headers=idem(tenant, "read"))
        assert response.status_code == 200 and "idempotent-replayed" not in response.headers


async def test_a_response_over_the_cap_is_replayed_without_its_body(settings) -> None:
    async with app_client(settings.model_copy(update={"idempotency_max_response_bytes": 10})) as http:
        carol = await register(http, "carol")
        first = await http.put(f"{KV}/k", json={"value": "x" * 100}, headers=idem(carol, "big"))
        assert first.status_code == 201 and len(first.content) > 10
        again = await http.put(f"{KV}/k", json={"value": "x" * 100}, headers=idem(carol, "big"))
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["idempotent-body-omitted"] == str(len(first.content))
        assert again.content == b"" and again.headers["etag"] == first.headers["etag"]
        assert await version(http, carol, "k") == 1


async def test_only_the_request_holding_a_reservation_settles_it(app: FastAPI) -> None:
    store: IdempotencyStore = app.state.idempotency
    record = store.record_key("tenant-1", b"k")
    assert await store.reserve(record, "a") is None
    assert await store.reserve(record, "b") == PENDING
    assert await store.extend(record, "a") and not await store.extend(record, "b")
    assert not await store.release(record, "b")
    response = StoredResponse("fp", 0, 201, [(b"etag", b'"1"')], b"{}")
    assert not await store.store(record, "b", response)
    assert await store.store(record, "a", response)
    assert await store.reserve(record, "c") == response
    assert not await store.release(record, "a")  # stored: no longer anyone's reservation


async def test_a_lapsed_reservation_goes_to_the_next_request(app: FastAPI) -> None:
    store = IdempotencyStore(app.state.scripts, ttl_seconds=60, lease_seconds=1)
    record = store.record_key("tenant-1", b"k")
    assert await store.reserve(record, "crashed") is None
    await asyncio.sleep(1.2)  # the holder's process died: nobody extends its lease
    assert await store.reserve(record, "next") is None
    response = StoredResponse("fp", 0, 200, [], b"{}")
    assert not await store.store(record, "crashed", response)  # the late holder cannot overwrite it
    assert await store.store(record, "next", response)
