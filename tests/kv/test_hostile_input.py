"""Issue #14: no 500 on hostile input to the KV routes, and RFC 9110 If-Match on keys.

Every answer here is a 4xx problem+json: a lone surrogate anywhere a string goes, If-Match values
that are not ASCII version numbers, and merge patches whose result is not JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.kv_api import Api
from tests.support.problems import assert_problem

pytestmark = pytest.mark.contract

SURROGATE = "\ud800"


def raw_json(body: str) -> dict[str, str]:
    """Request kwargs sending ``body`` as it is (json= would refuse to encode a lone surrogate)."""
    return {"content": body.encode(), "headers": {"Content-Type": "application/json"}}


async def test_lone_surrogate_in_a_value_is_422(api: Api):
    assert_problem(await api.request("PUT", "/k", **raw_json('{"value": "a\\ud800"}')), 422)
    assert_problem(await api.request("PUT", "/k", **raw_json('{"value": {"\\ud800": 1}}')), 422)
    assert_problem(await api.request("POST", "", **raw_json('{"key": "k", "value": "\\ud800"}')), 422)
    assert_problem(await api.request("PUT", "/k", **raw_json('{"value": 1, "tags": {"t": "\\ud800"}}')), 422)
    assert (await api.get("k")).status_code == 404


async def test_lone_surrogate_in_a_key_is_422(api: Api):
    assert_problem(await api.request("POST", "", **raw_json('{"key": "\\ud800", "value": 1}')), 422)
    for path in ("/batch/get", "/batch/delete"):
        assert_problem(await api.request("POST", path, **raw_json('{"keys": ["a", "\\ud800"]}')), 422)


async def test_lone_surrogate_in_a_batch_item_is_422_naming_the_item(api: Api):
    for item in ('{"key": "\\ud800", "value": 1}', '{"key": "b", "value": "\\ud800"}'):
        body = '{"items": [{"key": "a", "value": 1}, ' + item + "]}"
        problem = assert_problem(await api.request("POST", "/batch", **raw_json(body)), 422)
        assert problem.get("index") == 1, problem
    assert (await api.get("a")).status_code == 404


async def test_merge_patch_with_a_lone_surrogate_is_422(api: Api):
    await api.must_put("doc", {"a": 1})
    response = await api.request(
        "PATCH", "/doc", content=b'{"a": "\\ud800"}', headers={"Content-Type": "application/merge-patch+json"}
    )
    assert_problem(response, 422)
    assert (await api.get("doc")).json()["value"] == {"a": 1}


async def test_merge_patch_producing_a_non_json_number_is_422_as_put(api: Api):
    await api.must_put("doc", {"a": 1})
    assert_problem(await api.request("PUT", "/doc", **raw_json('{"value": {"x": 1e999}}')), 422)
    response = await api.request(
        "PATCH", "/doc", content=b'{"x": 1e999}', headers={"Content-Type": "application/merge-patch+json"}
    )
    assert_problem(response, 422)
    assert (await api.get("doc")).json()["value"] == {"a": 1}


@pytest.mark.parametrize(
    "header",
    ['"²"'.encode("latin-1"), '"\u0661"'.encode(), b'"' + b"9" * 5000 + b'"', "²".encode("latin-1"), b'"2" , "\xb2"'],
)
async def test_if_match_with_odd_digits_matches_nothing(api: Api, header: bytes):
    """Non-ASCII digits (Python's isdigit() takes '²'; int() refuses it) and 5,000 digits (over int()'s limit)."""
    await api.must_put("k", 1)
    if_match: Any = header  # httpx sends bytes as they are; the server reads them as Latin-1
    assert_problem(await api.put("k", 2, headers={"If-Match": if_match}), 412)
    assert_problem(await api.delete("k", headers={"If-Match": if_match}), 412)
    assert_problem(await api.patch("k", {"a": 1}, headers={"If-Match": if_match}), 412)
    assert (await api.get("k")).json()["value"] == 1


async def test_if_match_is_a_strong_comparison(api: Api):
    await api.must_put("k", 1)
    assert_problem(await api.put("k", 2, headers={"If-Match": 'W/"1"'}), 412)
    assert_problem(await api.delete("k", headers={"If-Match": 'W/"1"'}), 412)
    assert_problem(await api.patch("k", {"a": 1}, headers={"If-Match": 'W/"1"'}), 412)
    assert (await api.get("k")).json()["metadata"]["version"] == 1


async def test_if_match_list_matches_any_of_its_tags(api: Api):
    await api.must_put("k", 1)
    ok = await api.put("k", 2, headers={"If-Match": '"7", "1"'})
    assert ok.status_code == 200, ok.text
    assert_problem(await api.put("k", 3, headers={"If-Match": '"1", W/"2"'}), 412, "version_conflict")
    ok = await api.patch("k", {"a": 1}, headers={"If-Match": '"9","2"'})
    assert ok.status_code == 200, ok.text
    assert (await api.delete("k", headers={"If-Match": '"2", "3"'})).status_code == 200
    assert json.loads((await api.get("k")).text)["status"] == 404


async def test_tag_filter_is_unambiguous(api: Api):
    await api.must_put("k", 1, tags={"a": "b=c"})
    assert_problem(await api.list(tag_filter="a=b:c"), 422)
    listed = await api.list(tag_filter="a:b=c")
    assert [item["key"] for item in listed.json()["items"]] == ["k"]


async def test_concurrent_merge_patches_without_preconditions_all_apply(api: Api):
    await api.must_put("doc", {})
    responses = await asyncio.gather(*(api.patch("doc", {f"f{i}": i}) for i in range(25)))
    assert [r.status_code for r in responses] == [200] * 25, [r.text for r in responses if r.status_code != 200]
    final = (await api.get("doc")).json()
    assert final["value"] == {f"f{i}": i for i in range(25)}
    assert final["metadata"]["version"] == 26
