"""Single keys over HTTP: create, get, put, delete, ETags and conditional writes, TTL, tags,
exists/ttl endpoints, key charset, value and tag limits, base64 values."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from tests.support.kv_api import Api
from tests.support.problems import assert_problem
from tests.support.storage import force_expiry

pytestmark = pytest.mark.contract


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(params=["flat", "bucket"])
async def keys_api(request, api: Api) -> Api:
    """The same key rules on the flat API and on a named bucket."""
    if request.param == "flat":
        return api
    await api.create_bucket("things")
    return api.bucket("things")


# -- create / get -----------------------------------------------------------------------------


async def test_create_returns_201_with_entry_shape(keys_api: Api):
    response = await keys_api.create("user:1", {"name": "Ann", "n": [1, 2]}, ttl=60, tags={"category": "user"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key"] == "user:1"
    assert body["value"] == {"name": "Ann", "n": [1, 2]}
    meta = body["metadata"]
    assert set(meta) == {"version", "revision", "ttl", "tags", "created_at", "updated_at", "expires_at"}
    assert meta["version"] == 1 and meta["revision"] >= 1
    assert meta["ttl"] == 60
    assert meta["tags"] == {"category": "user"}
    assert meta["created_at"] == meta["updated_at"]
    lifetime = parse_time(meta["expires_at"]) - parse_time(meta["created_at"])
    assert lifetime.total_seconds() == 60
    assert response.headers["etag"] == '"1"'


async def test_create_existing_key_is_409(keys_api: Api):
    assert (await keys_api.create("k", 1)).status_code == 201
    body = assert_problem(await keys_api.create("k", 2), 409, "key_exists")
    assert "k" in body["detail"]
    assert (await keys_api.get("k")).json()["value"] == 1


async def test_get_returns_entry_with_etag(keys_api: Api):
    await keys_api.must_put("k", "v1")
    await keys_api.must_put("k", "v2")
    response = await keys_api.get("k")
    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert body["value"] == "v2"
    assert body["metadata"]["version"] == 2
    assert body["metadata"]["ttl"] is None and body["metadata"]["expires_at"] is None
    assert body["metadata"]["tags"] == {}


async def test_get_absent_key_is_404_problem(keys_api: Api):
    body = assert_problem(await keys_api.get("nope"), 404, "key_not_found")
    assert "nope" in body["detail"]


async def test_get_expired_key_is_404_before_any_sweep(keys_api: Api, sync_redis):
    await keys_api.must_put("short", 1, ttl=300)
    bucket = "default" if keys_api.base.endswith("/kv") else "things"
    force_expiry(sync_redis, keys_api.tenant_id, "short", bucket)
    assert_problem(await keys_api.get("short"), 404, "key_not_found")
    assert (await keys_api.request("GET", "/short/exists")).json() == {"key": "short", "exists": False}
    assert_problem(await keys_api.request("GET", "/short/ttl"), 404, "key_not_found")


async def test_key_really_expires_after_its_ttl(api: Api):
    """One real-time check that whole-second ttls end the key (everything else ages keys directly)."""
    import asyncio

    await api.must_put("blink", 1, ttl=1)
    assert (await api.get("blink")).status_code == 200
    await asyncio.sleep(1.1)
    assert_problem(await api.get("blink"), 404, "key_not_found")
    assert await api.count() == 0


# -- put --------------------------------------------------------------------------------------


async def test_put_creates_with_201_then_updates_with_200_and_version_plus_one(keys_api: Api):
    first = await keys_api.put("k", {"a": 1})
    assert first.status_code == 201
    assert first.json()["metadata"]["version"] == 1
    second = await keys_api.put("k", {"a": 2})
    assert second.status_code == 200
    meta = second.json()["metadata"]
    assert meta["version"] == 2
    assert meta["revision"] > first.json()["metadata"]["revision"]
    assert meta["created_at"] == first.json()["metadata"]["created_at"]
    assert second.headers["etag"] == '"2"'
    assert (await keys_api.get("k")).json()["value"] == {"a": 2}


async def test_put_without_ttl_keeps_expiry(api: Api):
    created = await api.must_put("k", 1, ttl=100)
    updated = await api.must_put("k", 2)
    assert updated["metadata"]["expires_at"] == created["metadata"]["expires_at"]
    assert 99 <= updated["metadata"]["ttl"] <= 100
    ttl = (await api.request("GET", "/k/ttl")).json()
    assert ttl["key"] == "k" and 99 <= ttl["ttl"] <= 100


async def test_put_with_ttl_zero_removes_expiry(api: Api):
    await api.must_put("k", 1, ttl=100)
    updated = await api.must_put("k", 2, ttl=0)
    assert updated["metadata"]["ttl"] is None and updated["metadata"]["expires_at"] is None
    assert (await api.request("GET", "/k/ttl")).json() == {"key": "k", "ttl": None}
    assert (await api.get("k")).json()["metadata"]["expires_at"] is None


async def test_put_with_new_ttl_replaces_expiry(api: Api):
    await api.must_put("k", 1, ttl=100)
    updated = await api.must_put("k", 2, ttl=5000)
    assert 4999 <= updated["metadata"]["ttl"] <= 5000


async def test_put_without_tags_keeps_tags_and_new_tags_replace_them(api: Api):
    await api.must_put("k", 1, tags={"category": "user", "tier": "gold"})
    kept = await api.must_put("k", 2)
    assert kept["metadata"]["tags"] == {"category": "user", "tier": "gold"}
    replaced = await api.must_put("k", 3, tags={"category": "admin"})
    assert replaced["metadata"]["tags"] == {"category": "admin"}
    assert [i["key"] for i in (await api.list(tag_filter="tier:gold")).json()["items"]] == []
    assert [i["key"] for i in (await api.list(tag_filter="category:admin")).json()["items"]] == ["k"]
    cleared = await api.must_put("k", 4, tags={})
    assert cleared["metadata"]["tags"] == {}
    assert (await api.list(tag_filter="category:admin")).json()["items"] == []


async def test_ttl_endpoint_is_null_without_expiry(api: Api):
    await api.must_put("k", 1)
    assert (await api.request("GET", "/k/ttl")).json() == {"key": "k", "ttl": None}
    assert_problem(await api.request("GET", "/absent/ttl"), 404, "key_not_found")


async def test_exists_endpoint(api: Api):
    await api.must_put("k", 1)
    assert (await api.request("GET", "/k/exists")).json() == {"key": "k", "exists": True}
    assert (await api.request("GET", "/other/exists")).json() == {"key": "other", "exists": False}


# -- conditional writes -----------------------------------------------------------------------


async def test_put_with_if_match_is_compare_and_swap(keys_api: Api):
    await keys_api.must_put("k", 1)
    ok = await keys_api.put("k", 2, headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.json()["metadata"]["version"] == 2
    body = assert_problem(await keys_api.put("k", 3, headers={"If-Match": '"1"'}), 412, "version_conflict")
    assert body["current_version"] == 2
    assert (await keys_api.get("k")).json()["value"] == 2


async def test_put_with_expected_version_query_is_compare_and_swap(api: Api):
    await api.must_put("k", 1)
    assert (await api.put("k", 2, params={"expected_version": 1})).status_code == 200
    assert_problem(await api.put("k", 3, params={"expected_version": 1}), 412, "version_conflict")
    assert (await api.get("k")).json()["value"] == 2


async def test_put_with_expected_revision_alias_is_compare_and_swap(api: Api):
    await api.create_bucket("seed")
    seed = api.bucket("seed")
    await seed.must_put("k", 1)
    assert (await seed.put("k", 2, params={"expectedRevision": 1})).status_code == 200
    assert_problem(await seed.put("k", 3, params={"expectedRevision": 1}), 412, "version_conflict")
    assert (await seed.get("k")).json()["value"] == 2


async def test_put_with_expected_version_on_absent_key_is_412(api: Api):
    assert_problem(await api.put("k", 1, params={"expected_version": 3}), 412, "version_conflict")
    assert (await api.get("k")).status_code == 404


async def test_expected_version_zero_means_must_not_exist(api: Api):
    created = await api.put("k", 1, params={"expected_version": 0})
    assert created.status_code == 201, created.text
    assert_problem(await api.put("k", 2, params={"expected_version": 0}), 412, "version_conflict")


async def test_put_with_if_none_match_star_is_create_only(keys_api: Api):
    created = await keys_api.put("k", 1, headers={"If-None-Match": "*"})
    assert created.status_code == 201
    assert_problem(await keys_api.put("k", 2, headers={"If-None-Match": "*"}), 412)
    assert (await keys_api.get("k")).json()["value"] == 1


async def test_put_with_if_match_star_needs_an_existing_key(api: Api):
    assert_problem(await api.put("k", 1, headers={"If-Match": "*"}), 412)
    await api.must_put("k", 1)
    assert (await api.put("k", 2, headers={"If-Match": "*"})).status_code == 200


async def test_unparseable_if_match_is_412(api: Api):
    await api.must_put("k", 1)
    assert_problem(await api.put("k", 2, headers={"If-Match": '"abc"'}), 412)
    assert (await api.get("k")).json()["value"] == 1


async def test_get_with_matching_if_none_match_is_304(api: Api):
    await api.must_put("k", 1)
    response = await api.get("k", headers={"If-None-Match": '"1"'})
    assert response.status_code == 304 and response.headers["etag"] == '"1"'
    assert (await api.get("k", headers={"If-None-Match": '"7"'})).status_code == 200


# -- delete -----------------------------------------------------------------------------------


async def test_delete_returns_message_and_removes_the_key(keys_api: Api):
    await keys_api.must_put("k", 1)
    response = await keys_api.delete("k")
    assert response.status_code == 200
    assert response.json() == {"message": "Key deleted successfully"}
    assert_problem(await keys_api.get("k"), 404, "key_not_found")
    assert_problem(await keys_api.delete("k"), 404, "key_not_found")


async def test_delete_honours_if_match(keys_api: Api):
    await keys_api.must_put("k", 1)
    await keys_api.must_put("k", 2)
    assert_problem(await keys_api.delete("k", headers={"If-Match": '"1"'}), 412, "version_conflict")
    assert (await keys_api.get("k")).status_code == 200
    assert (await keys_api.delete("k", headers={"If-Match": '"2"'})).status_code == 200
    assert (await keys_api.get("k")).status_code == 404


async def test_delete_honours_expected_version_query(api: Api):
    await api.must_put("k", 1)
    assert_problem(await api.delete("k", params={"expected_version": 5}), 412, "version_conflict")
    assert (await api.delete("k", params={"expected_version": 1})).status_code == 200


async def test_recreate_after_delete_continues_the_version(keys_api: Api):
    await keys_api.must_put("k", "a")
    await keys_api.must_put("k", "b")
    assert (await keys_api.delete("k")).status_code == 200
    again = await keys_api.create("k", "c")
    assert again.status_code == 201
    assert again.json()["metadata"]["version"] == 3
    # An ETag of the first incarnation never matches the new one (no ABA).
    assert_problem(await keys_api.put("k", "d", headers={"If-Match": '"1"'}), 412, "version_conflict")
    assert_problem(await keys_api.put("k", "d", headers={"If-Match": '"2"'}), 412, "version_conflict")
    assert (await keys_api.put("k", "d", headers={"If-Match": '"3"'})).status_code == 200


async def test_recreate_after_expiry_continues_the_version(api: Api, sync_redis):
    await api.must_put("k", "a", ttl=300)
    await api.must_put("k", "b")
    force_expiry(sync_redis, api.tenant_id, "k")
    again = await api.put("k", "c")
    assert again.status_code == 201
    assert again.json()["metadata"]["version"] == 3
    assert again.json()["metadata"]["expires_at"] is None  # the expired incarnation's ttl is gone


# -- keys, values, tags -------------------------------------------------------------------------


async def test_key_with_metadata_suffix_never_collides(keys_api: Api):
    await keys_api.must_put("x", "plain", tags={"a": "1"})
    await keys_api.must_put("x:metadata", "meta")
    await keys_api.must_put("x:history", "hist")
    assert (await keys_api.get("x")).json()["value"] == "plain"
    assert (await keys_api.get("x")).json()["metadata"]["version"] == 1
    assert (await keys_api.get("x:metadata")).json()["value"] == "meta"
    assert (await keys_api.delete("x:metadata")).status_code == 200
    assert (await keys_api.get("x")).json()["metadata"]["tags"] == {"a": "1"}
    assert [i["key"] for i in (await keys_api.list()).json()["items"]] == ["x", "x:history"]


async def test_every_allowed_key_character_round_trips(api: Api):
    key = "Az09._:@=+~,-"
    assert (await api.create(key, 1)).status_code == 201
    response = await api.get(key)
    assert response.status_code == 200 and response.json()["key"] == key


@pytest.mark.parametrize("key", ["sp ace", "star*", "üml", "brace{x}", "quote'", "pct%"])
async def test_key_with_invalid_characters_is_422(api: Api, key: str):
    assert_problem(await api.create(key, 1), 422)
    assert_problem(await api.put(key, 1), 422)
    assert await api.count() == 0


@pytest.mark.parametrize("key", ["a/b", "q?x", "hash#", "nul\x00", "tab\t", "new\nline"])
async def test_key_with_url_or_control_characters_is_422_in_a_body(api: Api, key: str):
    body = assert_problem(await api.create(key, 1), 422)
    assert body["errors"][0]["field"].endswith("key")
    batch = await api.request("POST", "/batch", json={"items": [{"key": key, "value": 1}]})
    assert_problem(batch, 422)
    assert await api.count() == 0


async def test_key_of_256_bytes_is_accepted_and_257_refused(api: Api):
    assert (await api.put("k" * 256, 1)).status_code == 201
    body = assert_problem(await api.put("k" * 257, 1), 422)
    assert "256" in body["detail"]
    assert_problem(await api.create("k" * 257, 1), 422)
    assert_problem(await api.get("k" * 257), 422)
    assert await api.count() == 1


async def test_empty_key_is_422(api: Api):
    assert_problem(await api.create("", 1), 422)


async def test_value_over_two_mib_is_413_naming_the_limit(keys_api: Api):
    big = "x" * (2 * 1024 * 1024)  # JSON text: 2 quotes more than 2 MiB (the default MAX_VALUE_BYTES)
    body = assert_problem(await keys_api.put("big", big), 413, "payload_too_large")
    assert "2097152" in body["detail"]
    assert_problem(await keys_api.create("big", big), 413)
    assert (await keys_api.get("big")).status_code == 404
    at_limit = "x" * (2 * 1024 * 1024 - 2)
    assert (await keys_api.put("big", at_limit)).status_code == 201


async def test_value_limit_counts_utf8_bytes_not_characters(api: Api):
    wide = "é" * 1_100_000  # 1,100,002 characters of JSON text, 2,200,002 bytes
    body = assert_problem(await api.put("wide", wide), 413, "payload_too_large")
    assert "2200002" in body["detail"] and "2097152" in body["detail"]
    batch = await api.request("POST", "/batch", json={"items": [{"key": "wide", "value": wide}]})
    assert_problem(batch, 413)
    assert await api.count() == 0


async def test_sixteen_tags_are_accepted_and_seventeen_refused(api: Api):
    tags = {f"t{i}": "v" for i in range(16)}
    assert (await api.put("k", 1, tags=tags)).status_code == 201
    body = assert_problem(await api.put("k", 2, tags={**tags, "t16": "v"}), 422)
    assert "16" in body["detail"]
    assert (await api.get("k")).json()["value"] == 1


@pytest.mark.parametrize(
    "tags",
    [{"bad name": "v"}, {"a=b": "v"}, {"a:b": "v"}, {"k": ""}, {"k": "x" * 300}, {"n" * 65: "v"}, {"k": 5}],
)
async def test_invalid_tags_are_422(api: Api, tags: dict):
    assert_problem(await api.put("k", 1, tags=tags), 422)
    assert (await api.get("k")).status_code == 404


@pytest.mark.parametrize("ttl", [-1, "soon", 1.5])
async def test_invalid_ttl_is_422(api: Api, ttl):
    assert_problem(await api.put("k", 1, ttl=ttl), 422)


async def test_any_json_value_round_trips(api: Api):
    values = [None, True, 0, -3.25, 'text with "quotes" and ünïcode', [], {}, [1, {"a": [None]}], {"z": {"y": 1}}]
    for index, value in enumerate(values):
        await api.must_put(f"v{index}", value)
        assert (await api.get(f"v{index}")).json()["value"] == value


async def test_base64_value_round_trips(keys_api: Api):
    data = bytes(range(256))
    encoded = base64.b64encode(data).decode()
    created = await keys_api.put("bin", encoded, encoding="base64")
    assert created.status_code == 201
    assert created.json()["encoding"] == "base64"
    body = (await keys_api.get("bin")).json()
    assert body["encoding"] == "base64"
    assert base64.b64decode(body["value"]) == data
    # A plain value written over it comes back without the encoding.
    await keys_api.must_put("bin", "plain")
    assert "encoding" not in (await keys_api.get("bin")).json()


async def test_invalid_base64_is_422(api: Api):
    assert_problem(await api.put("bin", "not base64!!", encoding="base64"), 422)
    assert_problem(await api.put("bin", 12, encoding="base64"), 422)
    assert_problem(await api.put("bin", "aGk=", encoding="hex"), 422)


async def test_unknown_body_field_is_422(api: Api):
    assert_problem(await api.request("PUT", "/k", json={"value": 1, "colour": "red"}), 422)


async def test_requests_without_token_are_401(api: Api):
    response = await api.client.get("/api/v1/kv/k")
    assert_problem(response, 401)
