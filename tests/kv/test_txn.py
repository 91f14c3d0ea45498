"""POST /kv/txn: compares and the chosen branch as one atomic step, on one Redis and on a cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.platform.keyspace import KeySchema
from tests.support.kv_api import Api

pytestmark = pytest.mark.contract


async def txn(api: Api, **body: Any):  # type: ignore[no-untyped-def]
    return await api.raw("POST", "/api/v1/kv/txn", json=body)


async def test_the_issue_example_runs_the_success_branch_across_buckets(api: Api):
    await api.create_bucket("config")
    config = api.bucket("config")
    for _ in range(3):
        await config.must_put("flags", {"beta": False})
    await api.must_put("limit", 10)
    await api.must_put("old", 1)
    await api.must_put("doc", {"b": 2})
    response = await txn(
        api,
        compare=[
            {"bucket": "config", "key": "flags", "version": 3},
            {"key": "leader", "exists": False},
            {"key": "limit", "value": 10},
        ],
        success=[
            {"op": "put", "bucket": "config", "key": "flags", "value": {"beta": True}},
            {"op": "delete", "key": "old"},
            {"op": "get", "key": "limit"},
            {"op": "patch", "key": "doc", "patch": {"a": 1}},
        ],
        failure=[{"op": "get", "bucket": "config", "key": "flags"}],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["succeeded"] is True
    put, delete, get, patch = body["results"]
    assert put["entry"]["value"] == {"beta": True} and put["entry"]["metadata"]["version"] == 4
    assert delete == {"op": "delete", "bucket": "default", "key": "old", "deleted": True}
    assert get["entry"]["value"] == 10
    assert patch["entry"]["value"] == {"b": 2, "a": 1}
    assert (await config.get("flags")).json()["value"] == {"beta": True}
    assert (await api.get("old")).status_code == 404
    assert (await api.get("doc")).json()["value"] == {"b": 2, "a": 1}
    # Each change has its history, as if written alone.
    history = (await config.request("GET", "/flags/history")).json()["items"]
    assert [item["version"] for item in history[:2]] == [4, 3]
    assert (await api.request("GET", "/old/history")).json()["items"][0]["operation"] == "delete"


async def test_a_failed_compare_runs_the_failure_branch_and_writes_nothing_else(api: Api):
    await api.must_put("flags", 1)
    response = await txn(
        api,
        compare=[{"key": "flags", "version": 7}],
        success=[{"op": "put", "key": "flags", "value": 2}],
        failure=[{"op": "get", "key": "flags"}, {"op": "get", "key": "absent"}],
    )
    body = response.json()
    assert body["succeeded"] is False
    assert body["results"][0]["entry"]["value"] == 1 and body["results"][1]["entry"] is None
    assert (await api.get("flags")).json()["metadata"]["version"] == 1


@pytest.mark.parametrize(
    ("compare", "holds"),
    [
        ({"key": "k", "version": 2}, True),
        ({"key": "k", "version": 2, "op": "!="}, False),
        ({"key": "k", "version": 3, "op": "<"}, True),
        ({"key": "k", "version": 2, "op": "<"}, False),
        ({"key": "k", "version": 1, "op": ">"}, True),
        ({"key": "k", "revision": 2}, True),
        ({"key": "k", "revision": 1, "op": ">"}, True),
        ({"key": "k", "revision": 2, "op": "<"}, False),
        ({"key": "k", "exists": True}, True),
        ({"key": "nope", "exists": False}, True),
        ({"key": "nope", "version": 0}, True),
        ({"key": "k", "value": {"b": [1, 2], "a": 1}}, True),  # members in any order
        ({"key": "k", "value": {"a": 1}}, False),
        ({"key": "k", "value": {"a": 1}, "op": "!="}, True),
        ({"key": "nope", "value": None}, False),
    ],
)
async def test_compares(api: Api, compare: dict[str, Any], holds: bool):
    await api.must_put("k", {"a": 0})
    await api.must_put("k", {"a": 1, "b": [1, 2]})  # version 2, revision 2
    response = await txn(api, compare=[compare], success=[{"op": "get", "key": "k"}])
    assert response.status_code == 200, response.text
    assert response.json()["succeeded"] is holds


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"success": [{"op": "put", "key": "a", "value": 1}, {"op": "frob", "key": "b"}]}, "success[1]"),
        ({"failure": [{"op": "put", "key": "a"}]}, "failure[0]"),
        ({"success": [{"op": "get", "key": "bad key"}]}, "success[0]"),
        ({"success": [{"op": "get", "key": "a", "bucket": "no/such"}]}, "success[0]"),
        ({"compare": [{"key": "a"}]}, "compare[0]"),
        ({"compare": [{"key": "a", "version": 1}, {"key": "a", "exists": True, "version": 1}]}, "compare[1]"),
        ({"compare": [{"key": "a", "value": 1, "op": "<"}]}, "compare[0]"),
        ({"success": [{"op": "put", "key": "a", "value": 1}, {"op": "delete", "key": "a"}]}, "success[1]"),
        ({"success": [{"op": "put", "key": "a", "value": 1, "ttl": 5, "lease": "x"}]}, "success[0]"),
        ({"success": ["put"]}, "success[0]"),
    ],
)
async def test_a_malformed_operation_is_422_naming_its_index(api: Api, body: dict[str, Any], field: str):
    response = await txn(api, **body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"].startswith(field), problem
    assert problem["index"] == int(field.split("[")[1].rstrip("]"))
    assert (await api.get("a")).status_code == 404


async def test_limits_on_compares_and_operations(api: Api):
    ok = await txn(
        api,
        compare=[{"key": f"k{i}", "exists": False} for i in range(64)],
        success=[{"op": "put", "key": f"k{i}", "value": i} for i in range(64)],
    )
    assert ok.status_code == 200 and ok.json()["succeeded"] is True
    too_many = await txn(api, compare=[{"key": "a", "exists": False}] * 65)
    assert too_many.status_code == 413
    too_many_ops = await txn(api, failure=[{"op": "get", "key": "a"}] * 65)
    assert too_many_ops.status_code == 413


async def test_a_branch_refused_by_a_quota_or_a_missing_bucket_writes_nothing(api: Api, sync_redis):  # type: ignore[no-untyped-def]
    await api.must_put("a", 1)
    missing = await txn(
        api, success=[{"op": "put", "key": "a", "value": 2}, {"op": "put", "bucket": "nope", "key": "b", "value": 1}]
    )
    assert missing.status_code == 404 and missing.json()["detail"].startswith("success[1]")
    sync_redis.hset(f"t:{{{api.tenant_id}}}:limits", "max_keys", 2)
    over = await txn(
        api,
        success=[
            {"op": "put", "key": "a", "value": 3},
            {"op": "put", "key": "b", "value": 1},
            {"op": "put", "key": "c", "value": 1},
        ],
    )
    assert over.status_code == 429 and over.json()["code"] == "quota_exceeded"
    assert (await api.get("a")).json()["value"] == 1 and (await api.get("b")).status_code == 404
    usage = sync_redis.hgetall(f"t:{{{api.tenant_id}}}:usage")
    assert int(usage[b"keys"]) == 1


async def test_patch_of_a_missing_key_is_404_naming_the_operation(api: Api):
    response = await txn(
        api, success=[{"op": "put", "key": "a", "value": 1}, {"op": "patch", "key": "gone", "patch": {"x": 1}}]
    )
    assert response.status_code == 404 and response.json()["detail"].startswith("success[1]")
    assert (await api.get("a")).status_code == 404


async def test_concurrent_transactions_are_atomic(api: Api):
    """50 transfers between two counters: the sum never changes, and each transfer ran once."""
    await api.must_put("x", 1000)
    await api.must_put("y", 0)

    async def transfer() -> int:
        attempts = 0
        while True:
            attempts += 1
            a = (await api.get("x")).json()
            b = (await api.get("y")).json()
            response = await txn(
                api,
                compare=[
                    {"key": "x", "version": a["metadata"]["version"]},
                    {"key": "y", "version": b["metadata"]["version"]},
                ],
                success=[
                    {"op": "put", "key": "x", "value": a["value"] - 1},
                    {"op": "put", "key": "y", "value": b["value"] + 1},
                ],
            )
            if response.json()["succeeded"]:
                return attempts

    await asyncio.gather(*(transfer() for _ in range(20)))
    x, y = (await api.get("x")).json()["value"], (await api.get("y")).json()["value"]
    assert (x, y) == (980, 20)


async def test_concurrent_patches_in_transactions_all_apply(api: Api):
    await api.must_put("doc", {})
    responses = await asyncio.gather(
        *(txn(api, success=[{"op": "patch", "key": "doc", "patch": {f"f{i}": i}}]) for i in range(10))
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert (await api.get("doc")).json()["value"] == {f"f{i}": i for i in range(10)}


async def test_each_change_is_audited_and_watched(immediate, app, api: Api, sync_redis):  # type: ignore[no-untyped-def]
    await api.must_put("gone", 1)
    await txn(
        api,
        success=[{"op": "put", "key": "a", "value": 1}, {"op": "delete", "key": "gone"}, {"op": "get", "key": "a"}],
    )
    await app.state.audit.flush()
    events = (await api.raw("GET", "/api/v1/audit", params={"limit": 20})).json()["items"]
    actions = [(e["action"], e.get("key")) for e in events]
    assert ("kv.put_key", "a") in actions and ("kv.delete_key", "gone") in actions
    assert sum(1 for action, _ in actions if action == "kv.txn") == 1
    assert not any(key == "a" and action == "kv.get_key" for action, key in actions)
    schema = KeySchema(api.tenant_id)
    feed = sync_redis.xrange(schema.feed(sync_redis.hget(schema.bucket("default"), "id").decode()))
    changes = [(fields[b"op"], fields[b"key"]) for _, fields in feed]
    assert changes[-2:] == [(b"put", b"a"), (b"delete", b"gone")]


async def test_isolation_between_tenants(api: Api, other_api: Api):
    await api.must_put("secret", 1)
    response = await txn(
        other_api,
        compare=[{"key": "secret", "exists": True}],
        success=[{"op": "get", "key": "secret"}],
        failure=[{"op": "get", "key": "secret"}],
    )
    assert response.json()["succeeded"] is False and response.json()["results"][0]["entry"] is None


async def test_quota_accounting_is_that_of_the_single_writes(api: Api, other_api: Api, sync_redis):  # type: ignore[no-untyped-def]
    for handle in (api, other_api):
        await handle.must_put("gone", {"x": "y" * 100})
        await handle.must_put("kept", [1, 2, 3])
    result = await txn(
        api,
        success=[
            {"op": "put", "key": "a", "value": {"v": "z" * 50}, "tags": {"t": "1"}},
            {"op": "put", "key": "kept", "value": [4]},
            {"op": "delete", "key": "gone"},
        ],
    )
    assert result.json()["succeeded"] is True
    await other_api.must_put("a", {"v": "z" * 50}, tags={"t": "1"})
    await other_api.must_put("kept", [4])
    assert (await other_api.delete("gone")).status_code == 200

    def usage(handle: Api) -> dict[bytes, bytes]:
        return sync_redis.hgetall(KeySchema(handle.tenant_id).usage())

    mine, theirs = usage(api), usage(other_api)
    for field in (b"keys", b"kv_bytes", b"kv_history_bytes", b"kv_feed_bytes"):
        assert mine.get(field) == theirs.get(field), field


async def test_delete_of_an_absent_key_is_no_error(api: Api):
    response = await txn(api, success=[{"op": "delete", "key": "nothing"}])
    assert response.json() == {
        "succeeded": True,
        "results": [{"op": "delete", "bucket": "default", "key": "nothing", "deleted": False}],
    }


async def test_a_binary_value_never_equals_a_value_compare(api: Api):
    await api.must_put("bin", "aGVsbG8=", encoding="base64")
    response = await txn(api, compare=[{"key": "bin", "value": "aGVsbG8="}])
    assert response.json()["succeeded"] is False


async def test_a_patch_that_loses_every_attempt_is_409(api: Api, app, monkeypatch):  # type: ignore[no-untyped-def]
    from app.kv.coord_model import StalePatchBase

    await api.must_put("doc", {})
    calls = 0

    async def always_stale(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        raise StalePatchBase(0)

    monkeypatch.setattr(app.state.kv_service.coord_store, "txn", always_stale)
    response = await txn(api, success=[{"op": "patch", "key": "doc", "patch": {"a": 1}}])
    assert response.status_code == 409
    assert calls == app.state.settings.merge_patch_max_retries


async def test_an_api_key_reaches_only_its_buckets_and_key_prefix(api: Api):
    from tests.support.api_keys import create_key, key_headers

    await api.create_bucket("other")
    key = await create_key(api.client, api.headers, scopes=["kv:write"], buckets=["default"], key_prefix="app:")
    limited = Api(api.client, api.tenant, "/api/v1/kv")
    limited.headers = key_headers(key)
    ok = await txn(limited, success=[{"op": "put", "key": "app:a", "value": 1}])
    assert ok.status_code == 200, ok.text
    for body in (
        {"success": [{"op": "put", "key": "app:b", "value": 1}, {"op": "get", "key": "secret"}]},
        {"compare": [{"key": "secret", "exists": True}]},
        {"failure": [{"op": "delete", "bucket": "other", "key": "app:x"}]},
    ):
        refused = await txn(limited, **body)
        assert refused.status_code == 403, refused.text
    assert (await api.get("app:b")).status_code == 404
