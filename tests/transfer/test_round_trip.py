"""Export a tenant, import the archive into another tenant: everything matches (in-process, tasks inline)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import datetime

import httpx
import pytest

from tests.support.tenants import bearer, register
from tests.support.transfer import API, assert_same, fill, snapshot

pytestmark = pytest.mark.usefixtures("immediate")


async def export(client: httpx.AsyncClient, headers: dict, **body: object) -> tuple[dict, bytes]:
    r = await client.post(f"{API}/exports", json=body or {"buckets": ["*"], "objects": True}, headers=headers)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    status = (await client.get(f"{API}/exports/{job_id}", headers=headers)).json()
    assert status["status"] == "done", status
    archive = await client.get(f"{API}/exports/{job_id}/download", headers=headers)
    assert archive.status_code == 200, archive.text
    assert hashlib.sha256(archive.content).hexdigest() == status["archive"]["sha256"]
    return status, archive.content


async def import_(client: httpx.AsyncClient, headers: dict, archive: bytes, on_conflict: str = "skip") -> dict:
    r = await client.post(
        f"{API}/imports",
        params={"on_conflict": on_conflict},
        content=archive,
        headers={**headers, "Content-Type": "application/x-tar"},
    )
    assert r.status_code == 202, r.text
    status = (await client.get(f"{API}/imports/{r.json()['id']}", headers=headers)).json()
    assert status["status"] in ("done", "failed"), status
    return status


@pytest.mark.contract
async def test_round_trip_small(client: httpx.AsyncClient, tenant: dict) -> None:
    await fill(client, tenant["headers"], buckets=3, keys=300, objects=4)
    status, archive = await export(client, tenant["headers"])
    assert status["progress"] == {"keys": 300, "objects": 4, "bytes": sum(3000 + n for n in range(4))}
    # A tar file any tar reader lists, with the documented members.
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert names[0] == "kvstore-export.json" and names[-1] == "manifest.json"
    assert "kv/buckets.ndjson" in names and "objects/000004.bin" in names

    other = await register(client, "bob")
    headers = bearer(other)
    report = await import_(client, headers, archive)
    assert report["status"] == "done", report
    assert report["report"]["created"] == 304 and report["report"]["failed"] == 0
    assert_same(await snapshot(client, tenant["headers"]), await snapshot(client, headers))

    again = await import_(client, headers, archive)  # idempotent with skip
    assert again["report"]["created"] == 0 and again["report"]["skipped"] == 304

    # An export is kept TRANSFER_EXPORT_TTL_SECONDS (a day), an import's record a day.
    for record, ttl in ((status, 86_400), (again, 86_400)):
        kept = datetime.fromisoformat(record["expires_at"]) - datetime.fromisoformat(record["updated_at"])
        assert abs(kept.total_seconds() - ttl) < 5, record


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_done_when_10k_keys_3_buckets_20_objects(client: httpx.AsyncClient, tenant: dict) -> None:
    """The issue's check: 10k keys in 3 buckets (tags, TTLs, binary values) and 20 objects, exported and
    imported into a new tenant: every key, value, tag, remaining TTL (within 2 s) and object byte matches."""
    await fill(client, tenant["headers"], buckets=3, keys=10_002, objects=20, size=50_000)
    _, archive = await export(client, tenant["headers"])
    headers = bearer(await register(client, "newtenant"))
    report = await import_(client, headers, archive)
    assert report["status"] == "done" and report["report"]["created"] == 10_022, report
    source, copy = await snapshot(client, tenant["headers"]), await snapshot(client, headers)
    assert len(source["keys"]) == 10_002 and len(source["objects"]) == 20
    assert_same(source, copy)
    again = await import_(client, headers, archive)
    assert again["report"]["skipped"] == 10_022 and again["report"]["created"] == 0
    assert_same(source, await snapshot(client, headers))
