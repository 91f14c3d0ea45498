"""PATCH /kv/{key}: RFC 7396 JSON merge patch of the stored value."""

from __future__ import annotations

import asyncio

import pytest

from app.kv.rules import merge_patch
from tests.support.kv_api import Api
from tests.support.problems import assert_problem

pytestmark = pytest.mark.contract

# RFC 7396, Appendix A: (original, patch, result).
RFC7396_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC7396_EXAMPLES)
def test_merge_patch_function_matches_rfc7396_appendix_a(original, patch, expected):
    assert merge_patch(original, patch) == expected


def test_merge_patch_does_not_mutate_its_inputs():
    original, patch = {"a": {"b": 1}}, {"a": {"c": 2}}
    merge_patch(original, patch)
    assert original == {"a": {"b": 1}} and patch == {"a": {"c": 2}}


async def test_patch_follows_rfc7396_appendix_a_over_http(api: Api):
    for index, (original, patch, expected) in enumerate(RFC7396_EXAMPLES):
        key = f"case{index}"
        await api.must_put(key, original)
        response = await api.patch(key, patch)
        assert response.status_code == 200, (index, response.text)
        assert response.json()["value"] == expected, index
        assert (await api.get(key)).json()["value"] == expected, index


async def test_patch_replaces_a_non_object_target(api: Api):
    await api.must_put("k", "a string")
    assert (await api.patch("k", {"a": {"b": None, "c": 1}})).json()["value"] == {"a": {"c": 1}}


async def test_patch_bumps_version_and_keeps_ttl_and_tags(api: Api):
    created = await api.must_put("k", {"a": 1}, ttl=500, tags={"t": "x"})
    response = await api.patch("k", {"b": 2})
    assert response.status_code == 200
    meta = response.json()["metadata"]
    assert response.headers["etag"] == '"2"'
    assert meta["version"] == 2
    assert meta["tags"] == {"t": "x"}
    assert meta["expires_at"] == created["metadata"]["expires_at"]


async def test_patch_honours_if_match(api: Api):
    await api.must_put("k", {"a": 1})
    await api.must_put("k", {"a": 2})
    body = assert_problem(await api.patch("k", {"b": 1}, headers={"If-Match": '"1"'}), 412, "version_conflict")
    assert body["current_version"] == 2
    assert (await api.get("k")).json()["value"] == {"a": 2}
    ok = await api.patch("k", {"b": 1}, headers={"If-Match": '"2"'})
    assert ok.status_code == 200 and ok.json()["value"] == {"a": 2, "b": 1}
    assert_problem(await api.patch("k", {"c": 1}, params={"expected_version": 2}), 412, "version_conflict")


async def test_patch_of_absent_key_is_404(api: Api):
    assert_problem(await api.patch("nope", {"a": 1}), 404, "key_not_found")
    assert (await api.get("nope")).status_code == 404


async def test_patch_with_wrong_content_type_is_415(api: Api):
    await api.must_put("k", {"a": 1})
    assert_problem(await api.patch("k", {"b": 1}, content_type="text/plain"), 415, "unsupported_media_type")
    assert_problem(await api.patch("k", {"b": 1}, content_type="application/json-patch+json"), 415)
    assert (await api.get("k")).json()["value"] == {"a": 1}


async def test_patch_with_invalid_json_is_400(api: Api):
    await api.must_put("k", {"a": 1})
    response = await api.request("PATCH", "/k", headers={"Content-Type": "application/merge-patch+json"}, content="{")
    assert_problem(response, 400)


@pytest.mark.parametrize("body", ['{"b": NaN}', '{"b": Infinity}', "-Infinity"])
async def test_patch_with_non_json_numbers_is_400_and_stores_nothing(api: Api, body: str):
    await api.must_put("k", {"a": 1})
    response = await api.request("PATCH", "/k", headers={"Content-Type": "application/merge-patch+json"}, content=body)
    assert_problem(response, 400)
    stored = await api.get("k")
    assert stored.json()["value"] == {"a": 1} and stored.json()["metadata"]["version"] == 1


async def test_patch_of_base64_value_is_422(api: Api):
    await api.must_put("bin", "aGk=", encoding="base64")
    assert_problem(await api.patch("bin", {"a": 1}), 422)


async def test_patch_result_over_the_value_limit_is_413(api: Api):
    await api.create_bucket("small", max_value_size=64)
    small = api.bucket("small")
    await small.must_put("k", {"a": 1})
    body = assert_problem(await small.patch("k", {"b": "x" * 100}), 413, "payload_too_large")
    assert "64" in body["detail"]
    assert (await small.get("k")).json()["value"] == {"a": 1}


async def test_concurrent_patches_lose_no_update(api: Api):
    await api.must_put("k", {})
    writers = 10
    responses = await asyncio.gather(*(api.patch("k", {f"f{i}": i}) for i in range(writers)))
    assert [r.status_code for r in responses] == [200] * writers
    final = (await api.get("k")).json()
    assert final["value"] == {f"f{i}": i for i in range(writers)}
    assert final["metadata"]["version"] == writers + 1
    assert sorted(r.json()["metadata"]["version"] for r in responses) == list(range(2, writers + 2))
