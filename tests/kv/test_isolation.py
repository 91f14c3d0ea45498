"""Two tenants with the same key and bucket names never see each other's data."""

from __future__ import annotations

import pytest

from tests.support.kv_api import Api
from tests.support.problems import assert_problem

pytestmark = pytest.mark.contract


async def test_tenants_with_the_same_names_are_isolated(api: Api, other_api: Api):
    alice, bob = api, other_api
    await alice.create_bucket("shared", history=3)
    await alice.must_put("k", "alice flat", tags={"owner": "x"})
    await alice.bucket("shared").must_put("k", "alice bucket")
    await alice.bucket("shared").must_put("k", "alice bucket 2")

    # Bob sees none of it.
    assert_problem(await bob.get("k"), 404, "key_not_found")
    assert (await bob.list()).json()["items"] == []
    assert (await bob.list(tag_filter="owner:x")).json()["items"] == []
    assert await bob.count() == 0
    assert (await bob.request("GET", "/k/history")).json()["items"] == []
    assert (await bob.raw("GET", "/api/v1/kv/buckets")).json()["items"] == []
    assert_problem(await bob.raw("GET", "/api/v1/kv/buckets/shared"), 404, "bucket_not_found")
    assert_problem(await bob.bucket("shared").get("k"), 404, "bucket_not_found")
    assert (await bob.request("GET", "/k/exists")).json()["exists"] is False
    batch = (await bob.request("POST", "/batch/get", json={"keys": ["k"]})).json()
    assert batch == {"items": [], "missing": ["k"]}

    # Bob's own writes with the same names do not touch Alice's.
    await bob.create_bucket("shared")
    created = await bob.create("k", "bob flat")
    assert created.status_code == 201 and created.json()["metadata"]["version"] == 1
    await bob.bucket("shared").must_put("k", "bob bucket")
    assert (await bob.delete("k")).status_code == 200
    assert (await bob.raw("DELETE", "/api/v1/kv/buckets/shared")).status_code == 200
    assert_problem(await bob.put("k", 1, headers={"If-Match": '"1"'}), 412)

    assert (await alice.get("k")).json()["value"] == "alice flat"
    assert (await alice.bucket("shared").get("k")).json()["value"] == "alice bucket 2"
    assert await alice.count() == 1
    assert [i["key"] for i in (await alice.list(tag_filter="owner:x")).json()["items"]] == ["k"]
    history = (await alice.bucket("shared").request("GET", "/k/history")).json()["items"]
    assert [i["value"] for i in history] == ["alice bucket 2", "alice bucket"]
    buckets = (await alice.raw("GET", "/api/v1/kv/buckets")).json()["items"]
    assert {b["name"]: b["keys"] for b in buckets} == {"default": 1, "shared": 1}
    assert (await alice.raw("GET", "/api/v1/kv/buckets/shared")).json()["history"] == 3


async def test_a_tenants_cas_cannot_match_another_tenants_version(api: Api, other_api: Api):
    await api.must_put("k", "alice")
    assert_problem(await other_api.put("k", "bob", params={"expected_version": 1}), 412, "version_conflict")
    assert_problem(await other_api.delete("k", headers={"If-Match": '"1"'}), 404)
    assert (await api.get("k")).json()["value"] == "alice"
