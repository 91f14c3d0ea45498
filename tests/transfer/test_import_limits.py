"""An import that meets the tenant's quota stops there, failed, with a report that counts exactly
what it wrote; an archive from a later format version, a truncated one and an expired key."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile

import httpx
import pytest

from app.config import Settings
from tests.support.tenants import bearer, register
from tests.support.transfer import API, fill

pytestmark = pytest.mark.usefixtures("immediate")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.quota_max_keys = 250
    return settings


async def export_archive(client: httpx.AsyncClient, headers: dict) -> bytes:
    job = (await client.post(f"{API}/exports", json={}, headers=headers)).json()["id"]
    return (await client.get(f"{API}/exports/{job}/download", headers=headers)).content


async def run_import(client: httpx.AsyncClient, headers: dict, archive: bytes) -> dict:
    r = await client.post(f"{API}/imports", content=archive, headers={**headers, "Content-Type": "application/x-tar"})
    assert r.status_code == 202, r.text
    return (await client.get(f"{API}/imports/{r.json()['id']}", headers=headers)).json()


async def test_the_quota_stops_an_import_and_the_report_says_what_was_written(
    client: httpx.AsyncClient, tenant: dict
) -> None:
    await fill(client, tenant["headers"], buckets=1, keys=200, objects=0)
    archive = await export_archive(client, tenant["headers"])
    other = bearer(await register(client, "bob"))
    items = [{"key": f"mine{i}", "value": i} for i in range(100)]
    assert (await client.post(f"{API}/kv/batch", json={"items": items}, headers=other)).status_code in (200, 201)
    result = await run_import(client, other, archive)
    assert result["status"] == "failed" and "quota" in result["error"], result
    report = result["report"]
    assert 0 < report["created"] < 200
    usage = (await client.get(f"{API}/usage", headers=other)).json()
    assert usage["keys"] == 100 + report["created"]


def _rebuild(archive: bytes, header: dict | None = None, cut: int | None = None) -> bytes:
    if cut is not None:
        return archive[:cut]
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as target,
    ):
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "kvstore-export.json" and header is not None:
                data = json.dumps(header).encode()
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    return out.getvalue()


async def test_a_later_version_or_a_truncated_archive_is_refused(client: httpx.AsyncClient, tenant: dict) -> None:
    await fill(client, tenant["headers"], buckets=1, keys=30, objects=1)
    archive = await export_archive(client, tenant["headers"])
    other = bearer(await register(client, "bob"))
    later = await run_import(client, other, _rebuild(archive, header={"format": "kvstore-export", "version": 2}))
    assert later["status"] == "failed" and "version 2" in later["error"]
    cut = await run_import(client, other, _rebuild(archive, cut=len(archive) // 2))
    assert cut["status"] == "failed" and "invalid archive" in cut["error"]
    assert (await client.get(f"{API}/usage", headers=other)).json()["keys"] == 0


async def test_a_key_that_expired_since_the_export_is_skipped(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    await client.put(f"{API}/kv/short", json={"value": 1, "ttl": 1}, headers=headers)
    await client.put(f"{API}/kv/long", json={"value": 2, "ttl": 600}, headers=headers)
    archive = await export_archive(client, headers)
    await asyncio.sleep(1.1)
    other = bearer(await register(client, "bob"))
    result = await run_import(client, other, archive)
    assert result["report"]["created"] == 1 and result["report"]["skipped"] == 1
    assert (await client.get(f"{API}/kv/short", headers=other)).status_code == 404
    assert 595 <= (await client.get(f"{API}/kv/long", headers=other)).json()["metadata"]["ttl"] <= 600


async def test_an_archive_cannot_write_into_the_hidden_bucket(client: httpx.AsyncClient, tenant: dict) -> None:
    await fill(client, tenant["headers"], buckets=1, keys=3, objects=1)
    job = (await client.post(f"{API}/exports", json={}, headers=tenant["headers"])).json()["id"]
    archive = (await client.get(f"{API}/exports/{job}/download", headers=tenant["headers"])).content
    out = io.BytesIO()
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as source:
        for member in source.getmembers():
            members[member.name] = source.extractfile(member).read()  # type: ignore[union-attr]
    meta = json.loads(members["objects/000001.json"])
    meta["bucket"], meta["name"] = "_transfer", f"exports/{job}/00000"
    members["objects/000001.json"] = json.dumps(meta).encode()
    manifest = json.loads(members.pop("manifest.json"))
    for entry in manifest["members"]:
        entry["size"], entry["sha256"] = len(members[entry["name"]]), hashlib.sha256(members[entry["name"]]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as target:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    result = await run_import(client, tenant["headers"], out.getvalue())
    assert {"item": f"object _transfer/exports/{job}/00000", "reason": "not a valid object bucket name"} in result[
        "report"
    ]["failures"]
    again = (await client.get(f"{API}/exports/{job}/download", headers=tenant["headers"])).content
    assert again == archive
