"""GET /kv and /kv/buckets/{bucket}/keys: page/page_size, cursor/limit, prefix, tag filters,
key order, limits, and expired keys that are never listed, counted or matched."""

from __future__ import annotations

import pytest

from tests.support.kv_api import Api
from tests.support.problems import assert_problem
from tests.support.storage import force_expiry

pytestmark = pytest.mark.contract


async def load(api: Api, keys: list[str], **fields) -> None:
    items = [{"key": key, "value": {"k": key}, **fields} for key in keys]
    response = await api.request("POST", "/batch", json={"items": items})
    assert response.status_code == 200, response.text


def keys_of(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["key"] for item in response.json()["items"]]


async def walk_cursor(api: Api, **params) -> list[list[str]]:
    """Every page of a cursor walk."""
    pages, cursor = [], None
    for _ in range(1000):
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        response = await api.list(**query)
        body = response.json()
        pages.append(keys_of(response))
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("the cursor walk never ended")


async def walk_pages(api: Api, page_size: int, **params) -> list[list[str]]:
    pages = []
    for page in range(1, 1000):
        response = await api.list(page=page, page_size=page_size, **params)
        assert response.json()["page"] == page and response.json()["page_size"] == page_size
        items = keys_of(response)
        if not items:
            return pages
        pages.append(items)
    raise AssertionError("paging never ended")


KEYS = [f"k{i:03d}" for i in range(25)]


async def test_list_page_and_page_size(api: Api):
    await load(api, list(reversed(KEYS)))
    first = await api.list(page=1, page_size=10)
    body = first.json()
    assert body["total"] == 25 and body["page"] == 1 and body["page_size"] == 10
    assert keys_of(first) == KEYS[:10]
    assert keys_of(await api.list(page=2, page_size=10)) == KEYS[10:20]
    assert keys_of(await api.list(page=3, page_size=10)) == KEYS[20:]
    assert keys_of(await api.list(page=4, page_size=10)) == []
    item = body["items"][0]
    assert item["value"] == {"k": "k000"} and item["metadata"]["version"] == 1


async def test_list_defaults_to_first_page_of_100(api: Api):
    await load(api, KEYS)
    body = (await api.list()).json()
    assert body["page"] == 1 and body["page_size"] == 100 and body["total"] == 25
    assert [i["key"] for i in body["items"]] == KEYS


async def test_cursor_walk_has_no_duplicates_no_gaps_in_key_order(api: Api):
    await load(api, KEYS)
    pages = await walk_cursor(api, limit=7)
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [k for p in pages for k in p] == KEYS


async def test_cursor_walk_with_exact_multiple_ends_without_an_empty_page(api: Api):
    await load(api, KEYS[:20])
    pages = await walk_cursor(api, limit=10)
    assert [k for p in pages for k in p] == KEYS[:20]
    assert all(pages)


async def test_cursor_page_has_no_page_number(api: Api):
    await load(api, KEYS)
    body = (await api.list(limit=5)).json()
    assert body["page"] is None and body["page_size"] == 5 and body["next_cursor"] == "k004"
    assert body["total"] == 25


async def test_keys_list_in_byte_order(api: Api):
    keys = ["b", "B", "a:1", "a1", "a", "A-z", "~", "0", "a.b", "@x"]
    await load(api, keys)
    assert keys_of(await api.list()) == sorted(keys, key=str.encode)
    assert [k for p in await walk_cursor(api, limit=3) for k in p] == sorted(keys, key=str.encode)


async def test_list_with_prefix(api: Api):
    await load(api, ["user:1", "user:2", "user:10", "users", "admin:1", "user", "uses", "v"])
    response = await api.list(prefix="user:")
    assert keys_of(response) == ["user:1", "user:10", "user:2"]
    assert response.json()["total"] == 3
    assert [k for p in await walk_cursor(api, prefix="user", limit=2) for k in p] == [
        "user",
        "user:1",
        "user:10",
        "user:2",
        "users",
    ]
    assert [k for p in await walk_pages(api, 2, prefix="user:") for k in p] == ["user:1", "user:10", "user:2"]
    assert keys_of(await api.list(prefix="zzz")) == []
    assert (await api.list(prefix="zzz")).json()["total"] == 0


async def test_prefix_with_cursor_outside_the_prefix(api: Api):
    await load(api, ["a1", "b1", "b2", "c1"])
    assert keys_of(await api.list(prefix="b", cursor="a9", limit=10)) == ["b1", "b2"]
    assert keys_of(await api.list(prefix="b", cursor="b1", limit=10)) == ["b2"]
    assert keys_of(await api.list(prefix="b", cursor="c", limit=10)) == []
    # Byte order: "B" < "a" < "b" whatever the server's locale.
    await load(api, ["B1", "Z9"])
    assert keys_of(await api.list(prefix="b", cursor="B1", limit=10)) == ["b1", "b2"]
    assert keys_of(await api.list(prefix="b", cursor="Z", limit=10)) == ["b1", "b2"]


async def test_tag_filter_matches_and_repeats_as_and(api: Api):
    await api.must_put("u1", 1, tags={"category": "user", "tier": "gold"})
    await api.must_put("u2", 2, tags={"category": "user", "tier": "free"})
    await api.must_put("u3", 3, tags={"category": "user", "tier": "gold"})
    await api.must_put("a1", 4, tags={"category": "admin", "tier": "gold"})
    await api.must_put("plain", 5)
    assert keys_of(await api.list(tag_filter="category:user")) == ["u1", "u2", "u3"]
    both = await api.request("GET", "", params=[("tag_filter", "category:user"), ("tag_filter", "tier:gold")])
    assert keys_of(both) == ["u1", "u3"]
    assert both.json()["total"] == 2
    assert keys_of(await api.list(tag_filter="tier:gold", prefix="a")) == ["a1"]
    assert keys_of(await api.list(tag_filter="category:nobody")) == []
    pages = await walk_cursor(api, tag_filter="category:user", limit=2)
    assert [k for p in pages for k in p] == ["u1", "u2", "u3"]
    assert [k for p in await walk_pages(api, 2, tag_filter="tier:gold") for k in p] == ["a1", "u1", "u3"]


async def test_tag_value_with_colon_can_be_filtered(api: Api):
    await api.must_put("k", 1, tags={"url": "http://x"})
    assert keys_of(await api.list(tag_filter="url:http://x")) == ["k"]


async def test_deleted_key_leaves_the_tag_index(api: Api):
    await api.must_put("k", 1, tags={"c": "u"})
    await api.delete("k")
    assert keys_of(await api.list(tag_filter="c:u")) == []


@pytest.mark.parametrize("raw", ["nocolon", ":value", "name:"])
async def test_malformed_tag_filter_is_422(api: Api, raw: str):
    assert_problem(await api.list(tag_filter=raw), 422)


async def test_page_size_over_1000_is_422(api: Api):
    assert (await api.list(page_size=1000)).status_code == 200
    assert (await api.list(limit=1000)).status_code == 200
    body = assert_problem(await api.list(page_size=1001), 422)
    assert "1000" in body["detail"]
    assert_problem(await api.list(limit=1001), 422)
    assert_problem(await api.list(limit=0), 422)
    assert_problem(await api.list(page=0), 422)


async def test_list_of_unknown_bucket_is_404(api: Api):
    assert_problem(await api.bucket("ghost").list(), 404, "bucket_not_found")


async def test_expired_keys_are_never_listed_counted_or_matched(api: Api, sync_redis):
    await load(api, KEYS, tags={"c": "u"})
    expired = KEYS[0:3] + KEYS[10:13] + KEYS[24:]  # at the start, in the middle and at the end
    for key in expired:
        force_expiry(sync_redis, api.tenant_id, key)
    live = [k for k in KEYS if k not in expired]

    assert await api.count() == len(live)
    first = await api.list(page_size=100)
    assert keys_of(first) == live and first.json()["total"] == len(live)
    assert [k for p in await walk_cursor(api, limit=4) for k in p] == live
    assert [k for p in await walk_pages(api, 4) for k in p] == live
    tagged = await api.list(tag_filter="c:u")
    assert keys_of(tagged) == live and tagged.json()["total"] == len(live)
    assert [k for p in await walk_pages(api, 4, tag_filter="c:u") for k in p] == live
    assert [k for p in await walk_cursor(api, limit=4, tag_filter="c:u") for k in p] == live
    with_prefix = await api.list(prefix="k01")
    assert keys_of(with_prefix) == [k for k in live if k.startswith("k01")]
    assert with_prefix.json()["total"] == 7
    assert [k for p in await walk_pages(api, 3, prefix="k01") for k in p] == [k for k in live if k.startswith("k01")]
    batch = (await api.request("POST", "/batch/get", json={"keys": ["k000", "k005"]})).json()
    assert [i["key"] for i in batch["items"]] == ["k005"] and batch["missing"] == ["k000"]
    buckets = (await api.raw("GET", "/api/v1/kv/buckets")).json()["items"]
    assert [b["keys"] for b in buckets if b["name"] == "default"] == [len(live)]


async def test_every_page_number_is_consistent_with_expired_keys(api: Api, sync_redis):
    """Page N holds the live keys (N-1)*size .. N*size-1, wherever expired keys lie."""
    await load(api, KEYS)
    for key in ("k001", "k002", "k007", "k015"):
        force_expiry(sync_redis, api.tenant_id, key)
    live = [k for k in KEYS if k not in ("k001", "k002", "k007", "k015")]
    for size in (1, 3, 5):
        for page in range(1, len(live) // size + 2):
            got = keys_of(await api.list(page=page, page_size=size))
            assert got == live[(page - 1) * size : page * size], (size, page)


async def test_every_listing_mode_agrees_with_a_model_of_the_bucket(api: Api, sync_redis):
    """Pages by number and by cursor, totals, prefixes and zero, one or two tag filters, with
    expired keys scattered through every index: each listing equals the one computed here."""
    keys = [f"k{i:02d}" for i in range(40)]
    tags = {key: {"a": str(i % 2), "b": str(i % 3)} for i, key in enumerate(keys)}
    items = [{"key": key, "value": i, "tags": tags[key], "ttl": 600} for i, key in enumerate(keys)]
    assert (await api.request("POST", "/batch", json={"items": items})).status_code == 200
    expired = {keys[i] for i in (0, 1, 6, 12, 13, 14, 21, 30, 39)}
    for key in expired:
        force_expiry(sync_redis, api.tenant_id, key)

    filters = [[], [("a", "0")], [("a", "0"), ("b", "1")], [("b", "2"), ("a", "1")]]
    for tag_filter in filters:
        for prefix in ("", "k1", "k3"):
            expected = [
                k
                for k in keys
                if k not in expired and k.startswith(prefix) and all(tags[k][n] == v for n, v in tag_filter)
            ]
            params = [("tag_filter", f"{n}:{v}") for n, v in tag_filter] + [("prefix", prefix)]
            where = (tag_filter, prefix)
            first = await api.request("GET", "", params=[*params, ("page_size", 1000)])
            assert keys_of(first) == expected, where
            assert first.json()["total"] == len(expected), where
            for size in (3, 7):
                listed, page = [], 1
                while True:
                    response = await api.request("GET", "", params=[*params, ("page", page), ("page_size", size)])
                    assert response.json()["total"] == len(expected), where
                    got = keys_of(response)
                    assert got == expected[(page - 1) * size : page * size], (where, size, page)
                    if not got:
                        break
                    listed += got
                    page += 1
                assert listed == expected, (where, size)
            walked, cursor = [], None
            while True:
                query = [*params, ("limit", 4)] + ([("cursor", cursor)] if cursor else [])
                body = (await api.request("GET", "", params=query)).json()
                walked += [i["key"] for i in body["items"]]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert walked == expected, where


async def test_a_pile_of_expired_keys_is_skipped_by_every_listing(api: Api, sync_redis):
    """More expired keys in a row than a walk reads one by one before it loads the expired set."""
    piled = [f"a{i:03d}" for i in range(80)]
    live = [f"b{i:03d}" for i in range(10)]
    items = [{"key": k, "value": 1, "ttl": 600, "tags": {"t": "x"}} for k in piled + live]
    assert (await api.request("POST", "/batch", json={"items": items})).status_code == 200
    for key in piled:
        force_expiry(sync_redis, api.tenant_id, key)
    assert keys_of(await api.list(limit=5)) == live[:5]
    assert keys_of(await api.list(limit=5, tag_filter="t:x")) == live[:5]
    assert [k for p in await walk_cursor(api, limit=3) for k in p] == live
    assert [k for p in await walk_pages(api, 4) for k in p] == live
    assert (await api.list()).json()["total"] == 10
    assert (await api.list(tag_filter="t:x")).json()["total"] == 10
    assert await api.count() == 10
