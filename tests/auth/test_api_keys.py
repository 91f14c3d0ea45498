"""Scoped API keys: create/list/revoke, hostile input, scopes, buckets and key prefixes, no key wider
than its creator, revocation and expiry, keys survive logout-all, the audit trail names the key, and
an API-key request costs no extra Redis round trip (tests/auth/test_api_key_cost.py)."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from app.auth.api_keys import credential_alive
from app.platform.keyspace import KeySchema
from tests.support.api_keys import API_KEYS, create_key, key_headers
from tests.support.apps import app_client
from tests.support.tenants import register

pytestmark = pytest.mark.contract

KV = "/api/v1/kv"


def assert_insufficient_scope(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "insufficient_scope"
    assert response.json()["type"].endswith("/insufficient_scope")
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')


async def test_create_list_revoke(client, tenant, sync_redis) -> None:
    body = {
        "name": "ci-reader",
        "scopes": ["kv:read", "kv:watch"],
        "buckets": ["config"],
        "key_prefix": "app:",
        "expires_in": 86400,
    }
    response = await client.post(API_KEYS, json=body, headers=tenant["headers"])
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "name", "key", "scopes", "buckets", "key_prefix", "created_at", "expires_at"}
    assert re.fullmatch(r"kvs_[A-Za-z0-9_-]{80,}", created["key"])
    assert (created["name"], created["scopes"], created["buckets"], created["key_prefix"]) == (
        "ci-reader",
        ["kv:read", "kv:watch"],
        ["config"],
        "app:",
    )
    assert created["expires_at"] is not None
    # Redis holds only the SHA-256 of the secret.
    stored = sync_redis.hget(KeySchema(tenant["tenant_id"]).api_keys(), created["id"])
    assert created["key"].encode() not in stored and created["key"][4:].encode() not in stored

    listed = await client.get(API_KEYS, headers=tenant["headers"])
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert "key" not in item and created["key"] not in listed.text
    assert item["id"] == created["id"] and item["last_used_at"] is None

    assert (await client.delete(f"{API_KEYS}/{created['id']}", headers=tenant["headers"])).status_code == 204
    assert (await client.get(API_KEYS, headers=tenant["headers"])).json()["items"] == []
    again = await client.delete(f"{API_KEYS}/{created['id']}", headers=tenant["headers"])
    assert again.status_code == 404 and again.headers["content-type"] == "application/problem+json"


async def test_another_tenants_key_id_is_404(client, tenant) -> None:
    bob = await register(client, "bob")
    key = await create_key(client, tenant["headers"])
    response = await client.delete(
        f"{API_KEYS}/{key['id']}", headers={"Authorization": f"Bearer {bob['access_token']}"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "api_key_not_found"
    assert (await client.get(f"{KV}/x", headers=key_headers(key))).status_code == 404  # the key still works


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["kv:delete"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": "kv:read"},
        {"name": "x", "scopes": ["kv:read"], "buckets": []},
        {"name": "x", "scopes": ["kv:read"], "expires_in": 10**12},
        {"name": "x", "scopes": ["kv:read"], "expires_in": 0},
        {"name": "x", "scopes": ["kv:read"], "expires_in": True},
        {"name": "a\x00b", "scopes": ["kv:read"]},
        {"name": "", "scopes": ["kv:read"]},
        {"name": "x" * 1000, "scopes": ["kv:read"]},
        {"name": "x", "scopes": ["kv:read"], "key_prefix": "p\x00"},
        {"name": "x", "scopes": ["kv:read"], "buckets": ["b\x00"]},
        {"name": "x", "scopes": ["kv:read"], "surprise": 1},
        {"scopes": ["kv:read"]},
    ],
)
async def test_hostile_create_bodies_are_422_problems(client, tenant, body) -> None:
    response = await client.post(API_KEYS, json=body, headers=tenant["headers"])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "raw", [b'{"name": "\\ud800", "scopes": ["kv:read"]}', b'{"name": "x", "scopes": ["\\udfff"]}']
)
async def test_lone_surrogates_are_422_problems(client, tenant, raw) -> None:
    headers = {**tenant["headers"], "content-type": "application/json"}
    response = await client.post(API_KEYS, content=raw, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_keys_per_tenant_are_capped(settings) -> None:
    async with app_client(settings.model_copy(update={"max_api_keys_per_tenant": 3})) as client:
        alice = await register(client, "alice")
        headers = {"Authorization": f"Bearer {alice['access_token']}"}
        for _ in range(3):
            await create_key(client, headers)
        refused = await client.post(API_KEYS, json={"name": "x", "scopes": ["kv:read"]}, headers=headers)
        assert refused.status_code == 409
        assert refused.json()["code"] == "too_many_api_keys"
        first = (await client.get(API_KEYS, headers=headers)).json()["items"][0]
        assert (await client.delete(f"{API_KEYS}/{first['id']}", headers=headers)).status_code == 204
        await create_key(client, headers)  # room again


async def test_scope_is_enforced_with_an_rfc6750_challenge(client, tenant) -> None:
    reader = await create_key(client, tenant["headers"], scopes=["kv:read"])
    assert (await client.put(f"{KV}/k", json={"value": 1}, headers=tenant["headers"])).status_code == 201
    assert (await client.get(f"{KV}/k", headers=key_headers(reader))).status_code == 200
    refused = await client.put(f"{KV}/k", json={"value": 2}, headers=key_headers(reader))
    assert_insufficient_scope(refused)
    assert refused.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="kv:write"'
    assert_insufficient_scope(await client.delete(f"{KV}/k", headers=key_headers(reader)))
    assert_insufficient_scope(await client.get("/api/v1/audit", headers=key_headers(reader)))
    assert_insufficient_scope(await client.get("/api/v1/usage", headers=key_headers(reader)))
    assert_insufficient_scope(await client.get(API_KEYS, headers=key_headers(reader)))
    assert_insufficient_scope(await client.post("/api/v1/kv/buckets", json={"name": "b"}, headers=key_headers(reader)))
    assert (await client.get(f"{KV}/k", headers=tenant["headers"])).json()["value"] == 1


async def test_buckets_narrow_a_key(client, tenant) -> None:
    headers = tenant["headers"]
    for name in ("config", "secret"):
        assert (await client.post(f"{KV}/buckets", json={"name": name}, headers=headers)).status_code == 201
        put = await client.put(f"{KV}/buckets/{name}/keys/k", json={"value": name}, headers=headers)
        assert put.status_code == 201
    key = await create_key(client, headers, scopes=["kv:read", "kv:write"], buckets=["config"])
    mine = key_headers(key)
    assert (await client.get(f"{KV}/buckets/config/keys/k", headers=mine)).json()["value"] == "config"
    assert_insufficient_scope(await client.get(f"{KV}/buckets/secret/keys/k", headers=mine))
    assert_insufficient_scope(await client.get(f"{KV}/k", headers=mine))  # the flat API is the bucket `default`
    assert_insufficient_scope(await client.put(f"{KV}/k", json={"value": 1}, headers=mine))
    assert_insufficient_scope(await client.get(f"{KV}/buckets/secret", headers=mine))
    listed = await client.get(f"{KV}/buckets", headers=mine)
    assert [b["name"] for b in listed.json()["items"]] == ["config"]


async def test_a_key_prefix_narrows_keys_listings_and_batches(client, tenant) -> None:
    headers = tenant["headers"]
    for name in ("app:a", "app:b", "other"):
        assert (await client.put(f"{KV}/{name}", json={"value": name}, headers=headers)).status_code == 201
    key = await create_key(client, headers, scopes=["kv:read", "kv:write"], key_prefix="app:")
    mine = key_headers(key)
    listing = await client.get(KV, headers=mine)
    assert listing.status_code == 200
    assert [item["key"] for item in listing.json()["items"]] == ["app:a", "app:b"]
    assert [i["key"] for i in (await client.get(KV, params={"prefix": "app:a"}, headers=mine)).json()["items"]] == [
        "app:a"
    ]
    assert_insufficient_scope(await client.get(KV, params={"prefix": "oth"}, headers=mine))
    assert_insufficient_scope(await client.get(f"{KV}/other", headers=mine))
    assert_insufficient_scope(await client.put(f"{KV}/other", json={"value": 1}, headers=mine))
    assert_insufficient_scope(await client.post(KV, json={"key": "zzz", "value": 1}, headers=mine))
    assert_insufficient_scope(await client.post(f"{KV}/batch/get", json={"keys": ["app:a", "other"]}, headers=mine))
    assert_insufficient_scope(
        await client.post(f"{KV}/batch", json={"items": [{"key": "other", "value": 1}]}, headers=mine)
    )
    assert_insufficient_scope(await client.get(f"{KV}/stats/count", headers=mine))
    assert (await client.put(f"{KV}/app:c", json={"value": 1}, headers=mine)).status_code == 201
    assert (await client.get(f"{KV}/other", headers=headers)).json()["value"] == "other"


async def test_object_scopes_buckets_and_prefix(client, tenant) -> None:
    headers = tenant["headers"]
    assert (await client.post("/api/v1/objects/buckets", json={"name": "files"}, headers=headers)).status_code == 201
    for name in ("pub/a.txt", "priv/b.txt"):
        put = await client.put(f"/api/v1/objects/buckets/files/objects/{name}", content=b"x", headers=headers)
        assert put.status_code in (200, 201), put.text
    reader = key_headers(await create_key(client, headers, scopes=["objects:read"], key_prefix="pub/"))
    assert (await client.get("/api/v1/objects/buckets/files/objects/pub/a.txt", headers=reader)).content == b"x"
    assert_insufficient_scope(await client.get("/api/v1/objects/buckets/files/objects/priv/b.txt", headers=reader))
    assert_insufficient_scope(
        await client.put("/api/v1/objects/buckets/files/objects/pub/c.txt", content=b"y", headers=reader)
    )
    listing = await client.get("/api/v1/objects/buckets/files/objects", headers=reader)
    assert [item["name"] for item in listing.json()["items"]] == ["pub/a.txt"]
    assert_insufficient_scope(await client.delete("/api/v1/objects/buckets/files", headers=reader))


async def test_no_key_can_create_a_wider_key(client, tenant) -> None:
    admin = key_headers(
        await create_key(
            client, tenant["headers"], scopes=["kv:read", "admin"], buckets=["a"], key_prefix="p:", expires_in=3600
        )
    )
    narrower = {"name": "n", "scopes": ["kv:read"], "buckets": ["a"], "key_prefix": "p:x", "expires_in": 60}
    assert (await client.post(API_KEYS, json=narrower, headers=admin)).status_code == 201
    for wider in (
        {**narrower, "scopes": ["kv:write"]},
        {**narrower, "buckets": ["b"]},
        {**narrower, "buckets": ["*"]},
        {**narrower, "key_prefix": "q"},
        {**narrower, "key_prefix": ""},
        {**narrower, "expires_in": 7200},
        {key: value for key, value in narrower.items() if key != "expires_in"},
    ):
        assert_insufficient_scope(await client.post(API_KEYS, json=wider, headers=admin))
    no_admin = key_headers(await create_key(client, tenant["headers"], scopes=["kv:read"]))
    assert_insufficient_scope(await client.post(API_KEYS, json=narrower, headers=no_admin))


async def test_a_revoked_key_is_refused_at_once_and_an_expired_one_too(client, tenant) -> None:
    key = await create_key(client, tenant["headers"], scopes=["kv:read"])
    assert (await client.get(f"{KV}/x", headers=key_headers(key))).status_code == 404
    assert (await client.delete(f"{API_KEYS}/{key['id']}", headers=tenant["headers"])).status_code == 204
    refused = await client.get(f"{KV}/x", headers=key_headers(key))
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"

    short = await create_key(client, tenant["headers"], scopes=["kv:read"], expires_in=1)
    assert (await client.get(f"{KV}/x", headers=key_headers(short))).status_code == 404
    await asyncio.sleep(1.1)
    expired = await client.get(f"{KV}/x", headers=key_headers(short))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


@pytest.mark.parametrize("secret", ["kvs_", "kvs_" + "0" * 91, "kvs_nothex" + "a" * 80, "kvs_\u00e9"])
async def test_a_forged_key_is_401(client, tenant, secret) -> None:
    response = await client.get(f"{KV}/x", headers={"Authorization": f"Bearer {secret}".encode()})
    assert response.status_code == 401


async def test_a_tampered_secret_is_401(client, tenant) -> None:
    key = await create_key(client, tenant["headers"], scopes=["kv:read"])
    forged = key["key"][:-4] + ("aaaa" if not key["key"].endswith("aaaa") else "bbbb")
    assert (await client.get(f"{KV}/x", headers=key_headers(forged))).status_code == 401


async def test_keys_survive_logout_all_and_cannot_end_sessions(client, tenant) -> None:
    key = key_headers(await create_key(client, tenant["headers"]))
    assert_insufficient_scope(await client.post("/api/v1/auth/logout-all", headers=key))
    password = {"current_password": "Secret123", "new_password": "Other1234"}
    assert_insufficient_scope(await client.post("/api/v1/auth/password", json=password, headers=key))
    assert (await client.get("/api/v1/auth/me", headers=key)).status_code == 200
    assert (await client.post("/api/v1/auth/logout-all", headers=tenant["headers"])).status_code == 204
    assert (await client.get(f"{KV}/x", headers=tenant["headers"])).status_code == 401
    assert (await client.get(f"{KV}/x", headers=key)).status_code == 404  # the key goes on


async def test_last_used_at_is_recorded(client, tenant) -> None:
    key = await create_key(client, tenant["headers"], scopes=["kv:read"])
    before = time.time()
    assert (await client.get(f"{KV}/x", headers=key_headers(key))).status_code == 404
    for _ in range(50):
        [item] = (await client.get(API_KEYS, headers=tenant["headers"])).json()["items"]
        if item["last_used_at"]:
            break
        await asyncio.sleep(0.02)
    assert item["last_used_at"] is not None
    from datetime import datetime

    assert datetime.fromisoformat(item["last_used_at"]).timestamp() >= before - 1


async def test_the_audit_trail_names_the_key(immediate, app, client) -> None:
    alice = await register(client, "alice")
    headers = {"Authorization": f"Bearer {alice['access_token']}"}
    key = await create_key(client, headers, name="deployer", scopes=["kv:write", "audit:read"])
    assert (await client.put(f"{KV}/colour", json={"value": "red"}, headers=key_headers(key))).status_code == 201
    await app.state.audit.flush()
    items = (await client.get("/api/v1/audit", headers=key_headers(key))).json()["items"]
    put = next(item for item in items if item["action"] == "kv.put_key")
    assert (put["api_key_id"], put["api_key_name"], put["username"]) == (key["id"], "deployer", "alice")
    created = next(item for item in items if item["action"] == "api-keys.create_api_key")
    assert created["api_key_id"] is None  # created with the login session


async def test_credential_alive(app, client, tenant) -> None:
    key = await create_key(client, tenant["headers"], scopes=["kv:read"])
    claims = app.state.tokens.verify_access_token(tenant["access_token"])
    tid = tenant["tenant_id"]
    assert await credential_alive(app.state.sessions, app.state.api_keys, tid, claims.credential, time.time())
    assert await credential_alive(app.state.sessions, app.state.api_keys, tid, f"k:{key['id']}", time.time())
    assert (await client.delete(f"{API_KEYS}/{key['id']}", headers=tenant["headers"])).status_code == 204
    assert not await credential_alive(app.state.sessions, app.state.api_keys, tid, f"k:{key['id']}", time.time())
    assert not await credential_alive(app.state.sessions, app.state.api_keys, tid, "k:0000000000000000", time.time())
    assert (await client.post("/api/v1/auth/logout-all", headers=tenant["headers"])).status_code == 204
    assert not await credential_alive(app.state.sessions, app.state.api_keys, tid, claims.credential, time.time())
    assert not await credential_alive(app.state.sessions, app.state.api_keys, tid, "x:whatever", time.time())


async def test_a_process_with_a_stale_copy_asks_redis_for_every_key_request(app, client, tenant, settings) -> None:
    """Never accepted on a stale copy: while the follower is stopped, a key another process revoked
    (and this one had cached) is refused at once, from Redis."""
    key = await create_key(client, tenant["headers"], scopes=["kv:read"])
    assert (await client.get(f"{KV}/x", headers=key_headers(key))).status_code == 404  # cached here
    sessions = app.state.sessions
    await sessions.aclose()  # this process stops following the stream
    sessions._synced_at = float("-inf")
    assert not sessions.current
    async with app_client(settings) as other:
        assert (await other.delete(f"{API_KEYS}/{key['id']}", headers=tenant["headers"])).status_code == 204
    assert (await client.get(f"{KV}/x", headers=key_headers(key))).status_code == 401


async def test_a_key_revoked_on_another_process_is_refused_here_within_a_second(client, tenant, settings) -> None:
    key = await create_key(client, tenant["headers"], scopes=["kv:read"])
    async with app_client(settings) as other:
        for _ in range(3):  # the other process verifies and caches it
            assert (await other.get(f"{KV}/x", headers=key_headers(key))).status_code == 404
        assert (await client.delete(f"{API_KEYS}/{key['id']}", headers=tenant["headers"])).status_code == 204
        started = time.monotonic()
        while (await other.get(f"{KV}/x", headers=key_headers(key))).status_code == 404:
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.01)


async def test_log_lines_never_hold_a_key(client, tenant) -> None:
    """The log redaction (app/platform/logging.py) covers the keys as they are minted, in a header
    and as the access_token query parameter of a watch URL."""
    from app.platform.logging import redact

    secret = (await create_key(client, tenant["headers"], scopes=["kv:read"]))["key"]
    for line in (
        f"Authorization: Bearer {secret}",
        f"GET /api/v1/kv/watch?access_token={secret}&since=3 HTTP/1.1",
        f"key={secret}",
        f'{{"key": "{secret}"}}',
    ):
        assert secret[4:12] not in redact(line), redact(line)
