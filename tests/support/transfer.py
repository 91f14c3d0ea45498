"""Filling a tenant with data and comparing two tenants, over HTTP (in-process)."""

from __future__ import annotations

import base64
import time

import httpx

API = "/api/v1"


async def fill(
    client: httpx.AsyncClient, headers: dict, buckets: int, keys: int, objects: int, size: int = 3000
) -> None:
    """``keys`` keys over ``buckets`` buckets (tags, TTLs on every third, binary values on every fifth)
    and ``objects`` objects in bucket ``files``."""
    names = [f"b{n}" for n in range(buckets)]
    for name in names:
        r = await client.post(f"{API}/kv/buckets", json={"name": name}, headers=headers)
        assert r.status_code == 201, r.text
    per = keys // buckets
    for name in names:
        for start in range(0, per, 500):
            items = []
            for i in range(start, min(per, start + 500)):
                item: dict = {"key": f"k{i:05d}", "value": {"n": i, "s": "x" * (i % 7)}, "tags": {"team": f"t{i % 3}"}}
                if i % 3 == 0:
                    item["ttl"] = 3600 + i
                if i % 5 == 0:
                    item["value"] = base64.b64encode(bytes([i % 256, 0, 255, i % 7])).decode()
                    item["encoding"] = "base64"
                items.append(item)
            r = await client.post(f"{API}/kv/buckets/{name}/keys/batch", json={"items": items}, headers=headers)
            assert r.status_code in (200, 201), r.text
    if objects:
        r = await client.post(f"{API}/objects/buckets", json={"name": "files"}, headers=headers)
        assert r.status_code == 201, r.text
        for n in range(objects):
            body = bytes((n * 7 + i) % 251 for i in range(size + n))
            r = await client.put(
                f"{API}/objects/buckets/files/objects/dir/o{n}.bin",
                content=body,
                headers={**headers, "Content-Type": "application/octet-stream", "X-Object-Meta-N": str(n)},
            )
            assert r.status_code == 201, r.text


async def snapshot(client: httpx.AsyncClient, headers: dict) -> dict:
    """Every key (value, encoding, tags, remaining TTL) and object (bytes, type, metadata) of a tenant."""
    out: dict = {"keys": {}, "objects": {}, "at": time.time()}
    r = await client.get(f"{API}/kv/buckets", headers=headers)
    assert r.status_code == 200, r.text
    for bucket in r.json()["items"]:
        name = bucket["name"]
        cursor = None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = await client.get(f"{API}/kv/buckets/{name}/keys", params=params, headers=headers)
            assert page.status_code == 200, page.text
            body = page.json()
            for item in body["items"]:
                meta = item["metadata"]
                out["keys"][(name, item["key"])] = (item["value"], item.get("encoding"), meta["tags"], meta["ttl"])
            cursor = body.get("next_cursor")
            if not cursor:
                break
    r = await client.get(f"{API}/objects/buckets", headers=headers)
    for bucket in r.json()["items"]:
        listing = await client.get(
            f"{API}/objects/buckets/{bucket['name']}/objects", params={"limit": 1000}, headers=headers
        )
        for item in listing.json()["items"]:
            got = await client.get(f"{API}/objects/buckets/{bucket['name']}/objects/{item['name']}", headers=headers)
            out["objects"][(bucket["name"], item["name"])] = (got.content, got.headers.get("x-object-meta-n"))
    return out


def assert_same(source: dict, copy: dict, ttl_slack: int = 2) -> None:
    assert set(source["keys"]) == set(copy["keys"])
    for ident, (value, encoding, tags, ttl) in source["keys"].items():
        value2, encoding2, tags2, ttl2 = copy["keys"][ident]
        assert (value2, encoding2, tags2) == (value, encoding, tags), ident
        if ttl is None:
            assert ttl2 is None, ident
        else:
            elapsed = copy["at"] - source["at"]
            assert ttl2 is not None and abs((ttl - elapsed) - ttl2) <= ttl_slack, (ident, ttl, ttl2, elapsed)
    assert source["objects"] == copy["objects"]


async def make_bucket(client: httpx.AsyncClient, headers: dict, name: str, keys: int, **settings: object) -> None:
    r = await client.post(f"{API}/kv/buckets", json={"name": name, **settings}, headers=headers)
    assert r.status_code == 201, r.text
    for start in range(0, keys, 500):
        items = [
            {"key": f"k{i:04d}", "value": {"i": i}, "tags": {"p": str(i % 2)}, **({"ttl": 600} if i % 4 == 0 else {})}
            for i in range(start, min(keys, start + 500))
        ]
        r = await client.post(f"{API}/kv/buckets/{name}/keys/batch", json={"items": items}, headers=headers)
        assert r.status_code in (200, 201), r.text
