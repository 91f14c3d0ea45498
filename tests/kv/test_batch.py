"""POST /kv/batch (all or nothing), /kv/batch/get and /kv/batch/delete."""

from __future__ import annotations

import pytest

from tests.support.kv_api import Api
from tests.support.problems import assert_problem

pytestmark = pytest.mark.contract


async def batch(api: Api, items: list[dict]):
    return await api.request("POST", "/batch", json={"items": items})


async def test_batch_put_writes_every_item_in_order(api: Api):
    await api.must_put("b", "old")
    response = await batch(
        api,
        [
            {"key": "c", "value": 3, "ttl": 60, "tags": {"t": "1"}},
            {"key": "a", "value": [1]},
            {"key": "b", "value": {"new": True}},
        ],
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["key"] for i in items] == ["c", "a", "b"]
    assert [i["metadata"]["version"] for i in items] == [1, 1, 2]
    assert items[0]["metadata"]["ttl"] == 60 and items[0]["metadata"]["tags"] == {"t": "1"}
    revisions = [i["metadata"]["revision"] for i in items]
    assert revisions == sorted(revisions) and len(set(revisions)) == 3
    assert (await api.get("b")).json()["value"] == {"new": True}
    assert (await api.get("c")).json()["metadata"]["tags"] == {"t": "1"}
    assert await api.count() == 3


async def test_batch_put_same_key_twice_keeps_the_last(api: Api):
    response = await batch(api, [{"key": "k", "value": 1}, {"key": "k", "value": 2}])
    assert [i["metadata"]["version"] for i in response.json()["items"]] == [1, 2]
    assert (await api.get("k")).json()["value"] == 2
    assert await api.count() == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"key": "bad key", "value": 1},
        {"key": "k" * 257, "value": 1},
        {"value": 1},
        {"key": "k2"},
        {"key": "k2", "value": 1, "ttl": -5},
        {"key": "k2", "value": 1, "tags": {f"t{i}": "v" for i in range(17)}},
        {"key": "k2", "value": "%%%", "encoding": "base64"},
        {"key": "k2", "value": 1, "extra": True},
        "not an object",
    ],
)
async def test_one_invalid_item_rejects_the_whole_batch_with_422_naming_its_index(api: Api, bad):
    await api.must_put("existing", "before")
    items = [{"key": "k0", "value": 0}, {"key": "existing", "value": "after"}, bad, {"key": "k3", "value": 3}]
    body = assert_problem(await batch(api, items), 422)
    assert "item 2" in body["detail"]
    assert body["index"] == 2
    # Nothing was written.
    assert (await api.get("k0")).status_code == 404
    assert (await api.get("k3")).status_code == 404
    assert (await api.get("existing")).json()["value"] == "before"
    assert await api.count() == 1


async def test_batch_with_a_value_over_the_limit_is_413_naming_index_and_limit(api: Api):
    items = [{"key": "k0", "value": 0}, {"key": "big", "value": "x" * (2 * 1024 * 1024)}]
    body = assert_problem(await batch(api, items), 413, "payload_too_large")
    assert "item 1" in body["detail"] and "2097152" in body["detail"]
    assert await api.count() == 0


async def test_batch_over_a_bucket_value_limit_writes_nothing(api: Api):
    await api.create_bucket("small", max_value_size=10)
    small = api.bucket("small")
    body = assert_problem(await batch(small, [{"key": "a", "value": 1}, {"key": "b", "value": "x" * 20}]), 413)
    assert "item 1" in body["detail"] and "10" in body["detail"]
    assert await small.count() == 0


async def test_batch_over_1000_items_is_refused_naming_the_limit(api: Api):
    items = [{"key": f"k{i}", "value": i} for i in range(1001)]
    response = await batch(api, items)
    assert response.status_code in (413, 422)
    assert "1000" in response.json()["detail"]
    assert await api.count() == 0


async def test_batch_of_1000_items_is_accepted(api: Api):
    items = [{"key": f"k{i:04d}", "value": i} for i in range(1000)]
    response = await batch(api, items)
    assert response.status_code == 200
    assert len(response.json()["items"]) == 1000
    assert await api.count() == 1000


async def test_empty_batch_is_422(api: Api):
    assert_problem(await batch(api, []), 422)


async def test_batch_get_returns_found_items_and_missing_keys(api: Api):
    await api.must_put("a", 1)
    await api.must_put("c", {"x": 3}, tags={"t": "v"})
    response = await api.request("POST", "/batch/get", json={"keys": ["c", "b", "a"]})
    assert response.status_code == 200
    body = response.json()
    assert [(i["key"], i["value"]) for i in body["items"]] == [("c", {"x": 3}), ("a", 1)]
    assert body["items"][0]["metadata"]["tags"] == {"t": "v"}
    assert body["missing"] == ["b"]


async def test_batch_get_with_an_invalid_key_is_422(api: Api):
    body = assert_problem(await api.request("POST", "/batch/get", json={"keys": ["ok", "no way"]}), 422)
    assert "keys[1]" in body["detail"]


async def test_batch_delete_returns_deleted_and_missing(api: Api):
    await api.must_put("a", 1)
    await api.must_put("b", 2)
    response = await api.request("POST", "/batch/delete", json={"keys": ["a", "zz", "b"]})
    assert response.status_code == 200
    assert response.json() == {"deleted": ["a", "b"], "missing": ["zz"]}
    assert await api.count() == 0
    history = (await api.request("GET", "/a/history")).json()["items"]
    assert history[0]["operation"] == "delete"


async def test_batch_delete_with_an_invalid_key_deletes_nothing(api: Api):
    await api.must_put("a", 1)
    assert_problem(await api.request("POST", "/batch/delete", json={"keys": ["a", "bad key"]}), 422)
    assert (await api.get("a")).status_code == 200


async def test_batch_endpoints_work_on_buckets(api: Api):
    await api.create_bucket("b1")
    b1 = api.bucket("b1")
    assert (await batch(b1, [{"key": "x", "value": 1}])).status_code == 200
    assert (await api.get("x")).status_code == 404
    got = (await b1.request("POST", "/batch/get", json={"keys": ["x"]})).json()
    assert [i["key"] for i in got["items"]] == ["x"]
    assert (await b1.request("POST", "/batch/delete", json={"keys": ["x"]})).json()["deleted"] == ["x"]
    assert_problem(await batch(api.bucket("ghost"), [{"key": "x", "value": 1}]), 404, "bucket_not_found")
