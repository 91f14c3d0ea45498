"""GET /kv/{key}/history and GET .../keys/{key}?revision=N."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from app.platform.keyspace import KeySchema
from tests.support.kv_api import Api
from tests.support.problems import assert_problem
from tests.support.storage import bucket_id, force_expiry

pytestmark = pytest.mark.contract


async def history(api: Api, key: str, **params) -> list[dict]:
    response = await api.request("GET", f"/{key}/history", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["key"] == key
    return response.json()["items"]


async def test_history_lists_past_revisions_newest_first(api: Api):
    first = await api.must_put("k", {"n": 1}, tags={"t": "a"})
    second = await api.must_put("k", {"n": 2})
    third = await api.patch("k", {"m": 3})
    items = await history(api, "k")
    assert [i["version"] for i in items] == [3, 2, 1]
    assert [i["operation"] for i in items] == ["put", "put", "put"]
    assert [i["value"] for i in items] == [{"n": 2, "m": 3}, {"n": 2}, {"n": 1}]
    assert [i["revision"] for i in items] == [
        third.json()["metadata"]["revision"],
        second["metadata"]["revision"],
        first["metadata"]["revision"],
    ]
    assert items[0]["tags"] == {"t": "a"}
    assert items[2]["updated_at"] == first["metadata"]["updated_at"]
    stamps = [datetime.fromisoformat(i["updated_at"].replace("Z", "+00:00")) for i in items]
    assert stamps == sorted(stamps, reverse=True)


async def test_history_records_deletes_and_recreates(api: Api):
    await api.must_put("k", 1)
    await api.delete("k")
    await api.must_put("k", 2)
    items = await history(api, "k")
    assert [(i["version"], i["operation"], i["value"]) for i in items] == [
        (2, "put", 2),
        (1, "delete", None),
        (1, "put", 1),
    ]


async def test_history_limit(api: Api):
    for n in range(5):
        await api.must_put("k", n)
    assert [i["value"] for i in await history(api, "k", limit=2)] == [4, 3]
    assert_problem(await api.request("GET", "/k/history", params={"limit": 0}), 422)
    assert_problem(await api.request("GET", "/k/history", params={"limit": 1001}), 422)


async def test_default_bucket_keeps_ten_revisions(api: Api):
    for n in range(15):
        await api.must_put("k", n)
    items = await history(api, "k")
    assert [i["value"] for i in items] == list(range(14, 4, -1))


async def test_bucket_history_depth_is_honoured(api: Api):
    await api.create_bucket("short", history=3)
    short = api.bucket("short")
    for n in range(6):
        await short.must_put("k", n)
    items = await history(short, "k")
    assert [i["version"] for i in items] == [6, 5, 4]
    assert [i["value"] for i in items] == [5, 4, 3]


async def test_history_of_unknown_key_is_empty(api: Api):
    assert await history(api, "never") == []


async def test_get_revision_returns_a_past_revision_while_kept(api: Api):
    await api.create_bucket("revs", history=2)
    revs = api.bucket("revs")
    r1 = (await revs.must_put("k", "one", tags={"v": "1"}))["metadata"]["revision"]
    r2 = (await revs.must_put("k", "two"))["metadata"]["revision"]
    old = await revs.get("k", params={"revision": r1})
    assert old.status_code == 200, old.text
    body = old.json()
    assert body["value"] == "one"
    assert body["metadata"]["version"] == 1 and body["metadata"]["revision"] == r1
    assert body["metadata"]["tags"] == {"v": "1"}
    assert old.headers["etag"] == '"1"'
    current = (await revs.get("k", params={"revision": r2})).json()
    assert current["value"] == "two" and current["metadata"]["revision"] == r2
    # A third write pushes revision r1 out of the 2 kept.
    await revs.must_put("k", "three")
    gone = await revs.get("k", params={"revision": r1})
    assert_problem(gone, 404, "revision_not_found")
    assert f"revision {r1} of key 'k' is not kept any more: the oldest kept is {r2}" in gone.json()["detail"]
    assert (await revs.get("k", params={"revision": r2})).json()["value"] == "two"


async def test_get_revision_that_never_existed_is_404(api: Api):
    written = (await api.must_put("k", 1))["metadata"]["revision"]
    missing = await api.get("k", params={"revision": 999})
    assert_problem(missing, 404, "revision_not_found")
    # Says the key has no such revision (not that it is "not kept any more"), and what to ask for.
    assert f"its newest is {written}" in missing.json()["detail"]
    assert "not the key's version" in missing.json()["detail"]
    assert_problem(await api.get("k", params={"revision": 0}), 422)


async def test_get_revision_of_a_deleted_key_while_kept(api: Api):
    rev = (await api.must_put("k", "gone soon"))["metadata"]["revision"]
    await api.delete("k")
    assert (await api.get("k")).status_code == 404
    past = await api.get("k", params={"revision": rev})
    assert past.status_code == 200 and past.json()["value"] == "gone soon"


async def test_every_mutation_records_a_feed_event_under_its_revision(api: Api, sync_redis):
    """The change feed hook (watch issue): one stream entry per write, id `<revision>-0`."""
    r1 = (await api.must_put("k", {"n": 1}, tags={"t": "x"}))["metadata"]["revision"]
    r2 = (await api.patch("k", {"m": 2})).json()["metadata"]["revision"]
    await api.delete("k")
    batch = await api.request("POST", "/batch", json={"items": [{"key": "a", "value": 1}, {"key": "b", "value": 2}]})
    r4, r5 = (i["metadata"]["revision"] for i in batch.json()["items"])
    schema = KeySchema(api.tenant_id)
    events = sync_redis.xrange(schema.feed(bucket_id(sync_redis, api.tenant_id)))
    ids = [event_id.decode() for event_id, _ in events]
    assert ids == [f"{r1}-0", f"{r2}-0", f"{r2 + 1}-0", f"{r4}-0", f"{r5}-0"]
    fields = [{k.decode(): v.decode() for k, v in f.items()} for _, f in events]
    assert [(f["op"], f["key"], f["ver"]) for f in fields] == [
        ("put", "k", "1"),
        ("put", "k", "2"),
        ("delete", "k", "2"),
        ("put", "a", "1"),
        ("put", "b", "1"),
    ]
    assert json.loads(fields[1]["v"]) == {"n": 1, "m": 2} and json.loads(fields[0]["tags"]) == {"t": "x"}


async def test_get_revision_never_returns_an_expired_value(api: Api, sync_redis):
    rev = (await api.must_put("k", "secret", ttl=300))["metadata"]["revision"]
    force_expiry(sync_redis, api.tenant_id, "k")
    assert_problem(await api.get("k", params={"revision": rev}), 404, "revision_not_found")
