"""Versions never repeat or go backwards under concurrent writers (all on one Redis)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.kv_api import Api

pytestmark = pytest.mark.contract

WRITERS = 50


async def test_concurrent_updates_get_distinct_versions(api: Api):
    await api.must_put("hot", 0)
    responses = await asyncio.gather(*(api.put("hot", i) for i in range(WRITERS)))
    assert [r.status_code for r in responses] == [200] * WRITERS
    versions = sorted(r.json()["metadata"]["version"] for r in responses)
    assert versions == list(range(2, WRITERS + 2))
    revisions = [r.json()["metadata"]["revision"] for r in responses]
    assert len(set(revisions)) == WRITERS
    final = (await api.get("hot")).json()
    assert final["metadata"]["version"] == WRITERS + 1
    # The value is the one written by the writer that got the last version.
    last = max(responses, key=lambda r: r.json()["metadata"]["version"])
    assert final["value"] == last.json()["value"]


async def test_concurrent_cas_writers_with_the_same_if_match_one_wins(api: Api):
    await api.must_put("hot", "start")
    responses = await asyncio.gather(
        *(api.put("hot", f"writer {i}", headers={"If-Match": '"1"'}) for i in range(WRITERS))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1
    assert statuses.count(412) == WRITERS - 1
    winner = next(r for r in responses if r.status_code == 200)
    final = (await api.get("hot")).json()
    assert final["metadata"]["version"] == 2
    assert final["value"] == winner.json()["value"]


async def test_concurrent_creates_one_wins(api: Api):
    responses = await asyncio.gather(*(api.create("new", i) for i in range(WRITERS)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1 and statuses.count(409) == WRITERS - 1
    assert (await api.get("new")).json()["metadata"]["version"] == 1


async def test_concurrent_create_only_puts_one_wins(api: Api):
    responses = await asyncio.gather(*(api.put("new", i, headers={"If-None-Match": "*"}) for i in range(WRITERS)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1 and statuses.count(412) == WRITERS - 1


async def test_concurrent_deletes_and_puts_never_reuse_a_version(api: Api):
    await api.must_put("k", 0)
    ops = [api.put("k", i) if i % 2 else api.delete("k") for i in range(WRITERS)]
    await asyncio.gather(*ops)
    items = (await api.request("GET", "/k/history", params={"limit": 1000})).json()["items"]
    put_versions = [i["version"] for i in items if i["operation"] == "put"]
    assert len(put_versions) == len(set(put_versions)), put_versions
    assert put_versions == sorted(put_versions, reverse=True)
    revisions = [i["revision"] for i in items]
    assert revisions == sorted(revisions, reverse=True) and len(set(revisions)) == len(revisions)
