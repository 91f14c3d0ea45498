"""GET /kv/search: the query language, ranking, pagination, and an index that every write keeps in
the same atomic step (puts, patches, batches, deletes, expiry, bucket delete and purge, search
switched on and off), whose bytes count against the tenant's quota; on one Redis and on a cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.kv.search import (
    PREFIX_MAX_EXPANSIONS,
    QUERY_MAX_TERMS,
    TERM_MAX_BYTES,
    TERMS_PER_ENTRY_MAX,
    TOKENS_PER_ENTRY_MAX,
)
from app.kv.tasks import purge_deleted_buckets, sweep_expired
from app.platform.keyspace import KeySchema
from app.platform.scripts import SyncScripts
from tests.support.apps import app_client
from tests.support.kv_api import Api
from tests.support.problems import assert_problem
from tests.support.storage import bucket_id, expire_for_sweep, stored_usage
from tests.support.tenants import register

pytestmark = pytest.mark.contract

SEARCH = "/api/v1/kv/search"
BUCKETS = "/api/v1/kv/buckets"

DOCS = {
    "post:1": {"title": "Rust web server", "body": "A fast web server written in Rust", "n": 1},
    "post:2": {"title": "Java web frameworks", "body": "Spring and friends", "tags": ["java", "spring"]},
    "post:3": {"title": "Rust and WebAssembly", "body": "Server side rendering", "nested": {"deep": ["tokio"]}},
    "note:4": {"title": "Gardening", "body": "Tomatoes need sun"},
}


async def search(api: Api, q: str, **params: Any) -> dict[str, Any]:
    response = await api.raw("GET", SEARCH, params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()


def keys_of(body: dict[str, Any]) -> list[str]:
    return [hit["key"] for hit in body["results"]]


async def searchable(api: Api, name: str = "docs", docs: dict[str, Any] | None = None) -> Api:
    await api.create_bucket(name, search=True)
    bucket = api.bucket(name)
    for key, value in (DOCS if docs is None else docs).items():
        await bucket.must_put(key, value)
    return bucket


async def test_terms_must_all_match_and_results_carry_entry_and_score(api: Api):
    await searchable(api)
    body = await search(api, "rust server")
    assert body["query"] == "rust server"
    assert sorted(keys_of(body)) == ["post:1", "post:3"]
    assert body["count"] == 2 and body["next_cursor"] is None
    hit = body["results"][0]
    assert hit["bucket"] == "docs" and hit["score"] > 0
    assert hit["entry"]["key"] == hit["key"] and hit["entry"]["value"] == DOCS[hit["key"]]
    assert hit["entry"]["metadata"]["version"] == 1
    # Case folded; nested strings and arrays indexed; numbers and member names not.
    assert keys_of(await search(api, "TOKIO")) == ["post:3"]
    assert keys_of(await search(api, "spring")) == ["post:2"]
    assert (await search(api, "title"))["count"] == 0
    assert (await search(api, "1"))["count"] == 1  # the `1` of the key name post:1, not the number n
    assert (await search(api, "rust java"))["count"] == 0


async def test_or_not_phrase_and_prefix(api: Api):
    await searchable(api)
    assert sorted(keys_of(await search(api, "java OR tomatoes"))) == ["note:4", "post:2"]
    assert sorted(keys_of(await search(api, "web rust OR gardening"))) == ["note:4", "post:1"]
    assert keys_of(await search(api, "rust -webassembly")) == ["post:1"]
    assert keys_of(await search(api, "rust NOT webassembly")) == ["post:1"]
    assert keys_of(await search(api, "rust AND webassembly")) == ["post:3"]
    assert keys_of(await search(api, '"web server"')) == ["post:1"]
    # Both words are in post:3, not next to each other in one string.
    assert keys_of(await search(api, 'rust "server rendering"')) == []
    assert keys_of(await search(api, 'rust "side rendering"')) == ["post:3"]
    assert keys_of(await search(api, 'rust -"web server"')) == ["post:3"]
    assert sorted(keys_of(await search(api, "tomat*"))) == ["note:4"]
    assert sorted(keys_of(await search(api, "web*"))) == ["post:1", "post:2", "post:3"]
    assert sorted(keys_of(await search(api, "rust -webas*"))) == ["post:1"]
    # A word of several terms is a phrase of them; key names and tags are indexed.
    assert keys_of(await search(api, "post-1")) == ["post:1"]
    assert sorted(keys_of(await search(api, "note"))) == ["note:4"]


async def test_bm25_ranks_the_denser_match_first(api: Api):
    docs = {
        "a": {"text": "redis " * 5 + "short"},
        "b": {"text": "redis and a great many other words that dilute the one mention of the term here"},
        "c": {"text": "nothing relevant"},
    }
    await searchable(api, docs=docs)
    body = await search(api, "redis")
    assert keys_of(body) == ["a", "b"]
    assert body["results"][0]["score"] > body["results"][1]["score"] > 0


async def test_pages_follow_next_cursor_without_repeats(api: Api):
    await searchable(api, docs={f"k{i:02d}": {"t": "common " + "word " * (i % 4)} for i in range(25)})
    seen: list[str] = []
    scores: list[float] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        body = await search(api, "common", **params)
        assert body["count"] == 25
        seen += keys_of(body)
        scores += [hit["score"] for hit in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"k{i:02d}" for i in range(25)]
    assert scores == sorted(scores, reverse=True)
    assert_problem(await api.raw("GET", SEARCH, params={"q": "common", "cursor": "garbage!"}), 422)
    for limit in (0, 101):
        assert_problem(await api.raw("GET", SEARCH, params={"q": "common", "limit": limit}), 422)


async def test_updates_deletes_and_patches_keep_the_index_exact(api: Api, sync_redis):
    docs = await searchable(api, docs={"k": {"t": "alpha beta"}})
    await docs.must_put("k", {"t": "gamma"})
    assert (await search(api, "alpha"))["count"] == 0
    assert keys_of(await search(api, "gamma")) == ["k"]
    assert (await docs.patch("k", {"u": "delta"})).status_code == 200
    assert keys_of(await search(api, "gamma delta")) == ["k"]
    await docs.must_put("k", {"t": "gamma"}, tags={"team": "Platform"})
    assert keys_of(await search(api, "platform team")) == ["k"]
    assert (await docs.delete("k")).status_code in (200, 204)
    for q in ("gamma", "platform", "k"):
        assert (await search(api, q))["count"] == 0
    # Nothing of the index is left: no posting list, no term, no bytes.
    schema, bid = KeySchema(api.tenant_id), bucket_id(sync_redis, api.tenant_id, "docs")
    assert sync_redis.zcard(schema.search_terms(bid)) == 0
    assert not sync_redis.exists(schema.search_posting(bid, "gamma"))
    assert int(sync_redis.hget(schema.bucket("docs"), "sbytes") or 0) == 0
    # Batches index too.
    items = [{"key": f"b{i}", "value": {"t": f"batch item{i}"}} for i in range(3)]
    assert (await docs.request("POST", "/batch", json={"items": items})).status_code == 200
    assert (await search(api, "batch"))["count"] == 3
    await docs.request("POST", "/batch/delete", json={"keys": ["b0", "b1"]})
    assert keys_of(await search(api, "batch")) == ["b2"]


async def test_expired_keys_never_match_even_before_the_sweep(api: Api, sync_redis, settings):
    docs = await searchable(api, docs={"live": {"t": "fresh bread"}, "old": {"t": "fresh fish"}})
    expire_for_sweep(sync_redis, api.tenant_id, "docs", "old")
    assert keys_of(await search(api, "fresh")) == ["live"]
    assert (await search(api, "fish"))["count"] == 0
    sweep_expired(sync_redis, SyncScripts(sync_redis), settings)
    schema, bid = KeySchema(api.tenant_id), bucket_id(sync_redis, api.tenant_id, "docs")
    assert not sync_redis.exists(schema.search_posting(bid, "fish"))
    # A key written again after expiring is found by its new text only.
    await docs.must_put("old", {"t": "fresh cheese"})
    assert keys_of(await search(api, "cheese")) == ["old"]


async def test_only_buckets_with_search_are_searched_and_bucket_narrows(api: Api):
    await searchable(api, "one", {"a": {"t": "shared word"}})
    await searchable(api, "two", {"b": {"t": "shared word"}})
    await api.create_bucket("plain")
    await api.bucket("plain").must_put("c", {"t": "shared word"})
    body = await search(api, "shared")
    assert sorted((hit["bucket"], hit["key"]) for hit in body["results"]) == [("one", "a"), ("two", "b")]
    assert keys_of(await search(api, "shared", bucket="two")) == ["b"]
    assert_problem(await api.raw("GET", SEARCH, params={"q": "shared", "bucket": "plain"}), 409, "search_off")
    assert_problem(await api.raw("GET", SEARCH, params={"q": "shared", "bucket": "ghost"}), 404)
    assert_problem(await api.raw("GET", SEARCH, params={"q": "shared", "bucket": "bad name!"}), 422)


async def test_search_switched_on_later_indexes_existing_keys_and_off_drops_them(api: Api, sync_redis):
    await api.create_bucket("later")
    later = api.bucket("later")
    await later.must_put("x", {"t": "existing text"})
    before = stored_usage(sync_redis, api.tenant_id)["kv_bytes"]
    response = await api.raw("PATCH", f"{BUCKETS}/later", json={"search": True})
    assert response.status_code == 200, response.text
    assert response.json()["search"] is True and response.json()["search_bytes"] > 0
    assert keys_of(await search(api, "existing")) == ["x"]
    indexed = stored_usage(sync_redis, api.tenant_id)["kv_bytes"]
    assert indexed == before + response.json()["search_bytes"]
    await later.must_put("y", {"t": "new text"})
    assert sorted(keys_of(await search(api, "text"))) == ["x", "y"]
    response = await api.raw("PATCH", f"{BUCKETS}/later", json={"search": False})
    assert response.json()["search"] is False and response.json()["search_bytes"] == 0
    assert stored_usage(sync_redis, api.tenant_id)["kv_bytes"] == before + len("y") + len('{"t":"new text"}')
    assert_problem(await api.raw("GET", SEARCH, params={"q": "text", "bucket": "later"}), 409, "search_off")
    schema, bid = KeySchema(api.tenant_id), bucket_id(sync_redis, api.tenant_id, "later")
    assert not sync_redis.exists(schema.search_terms(bid), schema.search_posting(bid, "text"))
    assert_problem(await api.raw("PATCH", f"{BUCKETS}/ghost", json={"search": True}), 404)
    assert_problem(await api.raw("PATCH", f"{BUCKETS}/later", json={"search": "yes"}), 422)


async def test_a_large_bucket_is_switched_in_steps_and_an_interrupted_switch_resumes(api: Api, sync_redis, monkeypatch):
    monkeypatch.setattr("app.kv.search.SEARCH_STEP_KEYS", 2)
    await api.create_bucket("big")
    big = api.bucket("big")
    for i in range(7):
        await big.must_put(f"k{i}", {"t": f"steady word{i}"})
    plain_bytes = stored_usage(sync_redis, api.tenant_id)["kv_bytes"]
    response = await api.raw("PATCH", f"{BUCKETS}/big", json={"search": True})
    assert response.json()["search_state"] == "on"
    assert (await search(api, "steady"))["count"] == 7

    # Interrupted half-way through switching off: one step only (what a request cut short leaves).
    searcher = api.client._transport.app.state.search_service  # type: ignore[attr-defined]
    step = searcher._scripts.call
    calls = 0

    async def one_step(*args: Any, **kwargs: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("cut short")
        return await step(*args, **kwargs)

    monkeypatch.setattr(searcher._scripts, "call", one_step)
    with pytest.raises(ConnectionError):
        await searcher.set_search(api.tenant_id, "big", False)
    monkeypatch.undo()
    monkeypatch.setattr("app.kv.search.SEARCH_STEP_KEYS", 2)
    info = (await api.raw("GET", f"{BUCKETS}/big")).json()
    assert info["search_state"] == "dropping" and info["search"] is False
    assert_problem(await api.raw("GET", SEARCH, params={"q": "steady", "bucket": "big"}), 409, "search_off")
    # Writes meanwhile take their key out of the index, whether the step reached it or not.
    await big.must_put("k6", {"t": "changed"})
    assert (await big.delete("k5")).status_code in (200, 204)
    response = await api.raw("PATCH", f"{BUCKETS}/big", json={"search": False})
    assert response.json()["search_state"] == "off" and response.json()["search_bytes"] == 0
    schema, bid = KeySchema(api.tenant_id), bucket_id(sync_redis, api.tenant_id, "big")
    assert sync_redis.zcard(schema.search_terms(bid)) == 0
    assert not [k for k in sync_redis.scan_iter(match=f"{schema.bucket_prefix(bid)}s:*")]
    assert not any(sync_redis.hexists(schema.entry(bid, f"k{i}"), "s") for i in range(7))
    expected = plain_bytes - len("k5") - len('{"t":"steady word5"}')
    expected += len('{"t":"changed"}') - len('{"t":"steady word6"}')
    assert stored_usage(sync_redis, api.tenant_id)["kv_bytes"] == expected

    # Interrupted while building: the bucket's search is refused until the switch is sent again.
    monkeypatch.setattr(searcher._scripts, "call", one_step)
    calls = 0
    with pytest.raises(ConnectionError):
        await searcher.set_search(api.tenant_id, "big", True)
    monkeypatch.undo()
    monkeypatch.setattr("app.kv.search.SEARCH_STEP_KEYS", 2)
    assert (await api.raw("GET", f"{BUCKETS}/big")).json()["search_state"] == "building"
    assert_problem(await api.raw("GET", SEARCH, params={"q": "steady", "bucket": "big"}), 409, "search_building")
    assert (await search(api, "steady"))["count"] == 0  # not among the searched buckets yet
    await big.must_put("k4", {"t": "steady rewritten"})  # indexed by the write itself
    await big.must_put("k9", {"t": "steady new"})
    response = await api.raw("PATCH", f"{BUCKETS}/big", json={"search": True})
    assert response.json()["search_state"] == "on"
    assert sorted(keys_of(await search(api, "steady"))) == ["k0", "k1", "k2", "k3", "k4", "k9"]
    assert keys_of(await search(api, "rewritten")) == ["k4"]
    assert sync_redis.hget(schema.bucket("big"), "sdocs") == b"7"  # k0-k4, k6, k9


async def test_index_bytes_count_against_the_quota(api: Api, sync_redis):
    docs = await searchable(api, docs={})
    await docs.must_put("k", {"t": "one"})
    usage = stored_usage(sync_redis, api.tenant_id)
    value_bytes = len("k") + len('{"t":"one"}')
    index_bytes = usage["kv_bytes"] - value_bytes
    # Per entry its term list ('s' field) + 1, per distinct term #key + #term + 8: terms k, one.
    assert index_bytes == len("2 k:1 one:1") + 1 + (1 + 1 + 8) + (1 + 3 + 8)
    info = (await api.raw("GET", f"{BUCKETS}/docs")).json()
    assert info["search_bytes"] == index_bytes and info["bytes"] == usage["kv_bytes"]
    # A write whose value fits but whose index does not is refused, and changes nothing.
    many_terms = {"t": " ".join(f"w{i}" for i in range(200))}
    limit = usage["kv_bytes"] + len("big") + len(json.dumps(many_terms, separators=(",", ":"))) + 50
    sync_redis.hset(KeySchema(api.tenant_id).limits(), "max_kv_bytes", limit)
    assert_problem(await docs.put("big", many_terms), 413)
    assert (await search(api, "w1"))["count"] == 0
    assert stored_usage(sync_redis, api.tenant_id)["kv_bytes"] == usage["kv_bytes"]
    # The same write in a transaction is refused too (its branch is checked whole before any write).
    txn = {"success": [{"op": "put", "bucket": "docs", "key": "big", "value": many_terms}]}
    assert_problem(await api.raw("POST", "/api/v1/kv/txn", json=txn), 413)
    assert (await search(api, "w1"))["count"] == 0
    assert stored_usage(sync_redis, api.tenant_id)["kv_bytes"] == usage["kv_bytes"]
    # Deleting the bucket releases everything.
    await api.raw("DELETE", f"{BUCKETS}/docs")
    assert stored_usage(sync_redis, api.tenant_id)["kv_bytes"] == 0


async def test_bucket_delete_purges_the_index(settings, sync_redis):
    small_inline = settings.model_copy(update={"bucket_inline_delete_max_keys": 3})
    async with app_client(small_inline) as client:
        api = Api(client, await register(client, "purge"))
        await searchable(api, "gone", {f"k{i}": {"t": f"word{i} shared"} for i in range(6)})
        bid = bucket_id(sync_redis, api.tenant_id, "gone")
        schema = KeySchema(api.tenant_id)
        assert (await api.raw("DELETE", f"{BUCKETS}/gone")).status_code == 200
        assert (await search(api, "shared"))["count"] == 0
        assert sync_redis.zcard(schema.search_buckets()) == 0
        assert purge_deleted_buckets(sync_redis, SyncScripts(sync_redis), small_inline) == 1
        leftovers = set(sync_redis.scan_iter(match=f"{schema.bucket_prefix(bid)}*"))
        assert leftovers == {schema.feed(bid).encode()}


async def test_tenants_never_see_each_other(api: Api, other_api: Api):
    await searchable(api, docs={"secret": {"t": "classified"}})
    await searchable(other_api, docs={"mine": {"t": "public"}})
    assert (await search(other_api, "classified"))["count"] == 0
    assert keys_of(await search(api, "classified")) == ["secret"]


async def test_api_key_sees_its_buckets_and_key_prefix_only(api: Api):
    await searchable(api, "open", {"app:1": {"t": "hello"}, "other:2": {"t": "hello"}})
    await searchable(api, "closed", {"app:3": {"t": "hello"}})
    created = await api.raw(
        "POST",
        "/api/v1/auth/api-keys",
        json={"name": "reader", "scopes": ["kv:read"], "buckets": ["open"], "key_prefix": "app:"},
    )
    assert created.status_code == 201, created.text
    reader = Api(api.client, {"tenant_id": api.tenant_id, "access_token": created.json()["key"]})
    body = await search(reader, "hello")
    assert [(hit["bucket"], hit["key"]) for hit in body["results"]] == [("open", "app:1")]
    assert_problem(await reader.raw("GET", SEARCH, params={"q": "hello", "bucket": "closed"}), 403)


@pytest.mark.parametrize(
    "q",
    [
        "",
        "-rust",
        "NOT rust OR java",
        "!!! ---",
        "a-b*",
        " ".join(f"t{i}" for i in range(QUERY_MAX_TERMS + 1)),
        "x" * 1025,
    ],
)
async def test_malformed_queries_are_422(api: Api, q: str):
    await searchable(api, docs={"k": {"t": "rust"}})
    assert_problem(await api.raw("GET", SEARCH, params={"q": q}), 422)


async def test_limits_term_length_terms_per_entry_and_prefix_breadth(api: Api):
    long_word = "a" * (TERM_MAX_BYTES + 10)
    words = {"t": " ".join(f"w{i}" for i in range(TERMS_PER_ENTRY_MAX + 5))}
    await searchable(api, docs={"long": {"t": long_word}, "many": words})
    # A term is cut to TERM_MAX_BYTES: a longer query word matches by its first bytes.
    assert keys_of(await search(api, "a" * TERM_MAX_BYTES)) == ["long"]
    assert keys_of(await search(api, "a" * (TERM_MAX_BYTES + 3))) == ["long"]
    # The first TERMS_PER_ENTRY_MAX distinct terms are indexed (the key name is the first).
    assert keys_of(await search(api, f"w{TERMS_PER_ENTRY_MAX - 2}")) == ["many"]
    assert (await search(api, f"w{TERMS_PER_ENTRY_MAX + 4}"))["count"] == 0
    # A prefix standing for more than PREFIX_MAX_EXPANSIONS terms is too broad.
    assert PREFIX_MAX_EXPANSIONS < TERMS_PER_ENTRY_MAX
    assert_problem(await api.raw("GET", SEARCH, params={"q": "w*"}), 422)
    assert keys_of(await search(api, "w99*")) == ["many"]
    # Only the first TOKENS_PER_ENTRY_MAX terms of an entry are read (`long2` is its first).
    await api.bucket("docs").must_put("long2", {"t": "filler " * (TOKENS_PER_ENTRY_MAX - 2) + "last beyond"})
    assert keys_of(await search(api, "last")) == ["long2"]
    assert (await search(api, "beyond"))["count"] == 0


async def test_a_key_named_search_is_not_the_flat_api(api: Api):
    assert_problem(await api.raw("GET", SEARCH), 422)  # q is required: the route, not a key
    await api.bucket("default").must_put("search", 1)
    assert (await api.raw("GET", "/api/v1/kv/buckets/default/keys/search")).json()["value"] == 1


async def test_cloudevents_commits_are_indexed(api: Api):
    await searchable(api, docs={})
    event = {
        "specversion": "1.0",
        "id": "e1",
        "source": "app",
        "type": "commit",
        "bucket": "docs",
        "data": {"resource_id": "ev", "resource_data": {"t": "committed through events"}},
    }
    assert (await api.raw("POST", "/api/v1/events", json=event)).status_code == 201
    assert keys_of(await search(api, "committed")) == ["ev"]
    deleted = {**event, "id": "e2", "data": {"resource_id": "ev", "deleted": True}}
    assert (await api.raw("POST", "/api/v1/events", json=deleted)).status_code == 200
    assert (await search(api, "committed"))["count"] == 0


async def test_an_alternative_whose_rarest_term_matches_too_many_entries_is_422(api: Api, monkeypatch):
    monkeypatch.setattr("app.kv.search.CANDIDATES_MAX", 3)
    await searchable(api, docs={f"k{i}": {"t": "everywhere" + (" rare" if i < 2 else "")} for i in range(5)})
    assert_problem(await api.raw("GET", SEARCH, params={"q": "everywhere"}), 422)
    assert (await search(api, "everywhere rare"))["count"] == 2  # the rarer term keeps it narrow
    assert (await search(api, "rare OR nothing"))["count"] == 2


async def test_switching_on_past_the_quota_is_413_and_can_be_undone(api: Api, sync_redis):
    await api.create_bucket("full")
    for i in range(3):
        await api.bucket("full").must_put(f"k{i}", {"t": " ".join(f"w{j}" for j in range(50))})
    used = stored_usage(sync_redis, api.tenant_id)["kv_bytes"]
    sync_redis.hset(KeySchema(api.tenant_id).limits(), "max_kv_bytes", used + 100)
    assert_problem(await api.raw("PATCH", f"{BUCKETS}/full", json={"search": True}), 413)
    assert (await api.raw("GET", f"{BUCKETS}/full")).json()["search_state"] == "building"
    assert stored_usage(sync_redis, api.tenant_id)["kv_bytes"] == used
    response = await api.raw("PATCH", f"{BUCKETS}/full", json={"search": False})
    assert response.json()["search_state"] == "off"
    assert stored_usage(sync_redis, api.tenant_id)["kv_bytes"] == used


async def test_the_admin_recount_counts_the_index_as_the_writes_do(api: Api, sync_redis, settings):
    from app.platform.redis import create_async_data_redis
    from app.platform.scripts import Scripts
    from app.tenancy.service import UsageService  # the operator's repair tool

    await searchable(api)
    await api.bucket("docs").must_put("post:1", {"title": "rewritten once"}, tags={"a": "b"})
    before = stored_usage(sync_redis, api.tenant_id)
    info = (await api.raw("GET", f"{BUCKETS}/docs")).json()
    redis_client = create_async_data_redis(settings)
    try:
        totals = await UsageService(redis_client, Scripts(redis_client), settings).recount(api.tenant_id)
    finally:
        await redis_client.aclose()
    assert totals["kv_bytes"] == before["kv_bytes"]
    assert (await api.raw("GET", f"{BUCKETS}/docs")).json()["bytes"] == info["bytes"]


async def test_a_batch_whose_index_would_pass_the_quota_is_refused_whole(api: Api, sync_redis):
    docs = await searchable(api, docs={})
    used = stored_usage(sync_redis, api.tenant_id).get("kv_bytes", 0)
    items = [{"key": f"b{i}", "value": {"t": " ".join(f"w{j}" for j in range(40))}} for i in range(3)]
    values = sum(len(item["key"]) + len(json.dumps(item["value"], separators=(",", ":"))) for item in items)
    sync_redis.hset(KeySchema(api.tenant_id).limits(), "max_kv_bytes", used + values + 20)
    assert_problem(await docs.request("POST", "/batch", json={"items": items}), 413)
    assert stored_usage(sync_redis, api.tenant_id).get("kv_bytes", 0) == used
    assert (await search(api, "w1"))["count"] == 0
