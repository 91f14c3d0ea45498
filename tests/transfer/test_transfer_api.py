"""Exports and imports over HTTP: Range resume, conflicts, the manifest's sums, isolation, history
order, API keys, the hidden bucket and expiry (tasks run inline)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import httpx
import pytest

from app.config import Settings
from app.transfer import tasks as transfer_tasks
from app.transfer.engine import now_ms
from app.transfer.store import TransferStore
from tests.support.api_keys import create_key, key_headers
from tests.support.tenants import bearer, register
from tests.support.transfer import API, fill

pytestmark = pytest.mark.usefixtures("immediate")


async def start_export(client: httpx.AsyncClient, headers: dict, **body: object) -> dict:
    r = await client.post(f"{API}/exports", json=body or {"buckets": ["*"]}, headers=headers)
    assert r.status_code == 202, r.text
    status = (await client.get(f"{API}/exports/{r.json()['id']}", headers=headers)).json()
    assert status["status"] == "done", status
    return status


async def download(client: httpx.AsyncClient, headers: dict, job_id: str) -> bytes:
    r = await client.get(f"{API}/exports/{job_id}/download", headers=headers)
    assert r.status_code == 200
    return r.content


async def run_import(client: httpx.AsyncClient, headers: dict, archive: bytes, on_conflict: str = "skip") -> dict:
    r = await client.post(
        f"{API}/imports",
        params={"on_conflict": on_conflict},
        content=archive,
        headers={**headers, "Content-Type": "application/x-tar"},
    )
    assert r.status_code == 202, r.text
    return (await client.get(f"{API}/imports/{r.json()['id']}", headers=headers)).json()


async def test_a_broken_download_resumes_with_range(client: httpx.AsyncClient, tenant: dict) -> None:
    await fill(client, tenant["headers"], buckets=1, keys=50, objects=2, size=200_000)
    status = await start_export(client, tenant["headers"])
    whole = await download(client, tenant["headers"], status["id"])
    assert len(whole) == status["archive"]["size"]
    cut = len(whole) // 3
    etag = f'"{status["archive"]["sha256"]}"'
    rest = await client.get(
        f"{API}/exports/{status['id']}/download",
        headers={**tenant["headers"], "Range": f"bytes={cut}-", "If-Range": etag},
    )
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {cut}-{len(whole) - 1}/{len(whole)}"
    assert whole[:cut] + rest.content == whole
    assert hashlib.sha256(whole[:cut] + rest.content).hexdigest() == status["archive"]["sha256"]
    past = await client.get(
        f"{API}/exports/{status['id']}/download", headers={**tenant["headers"], "Range": f"bytes={len(whole)}-"}
    )
    assert past.status_code == 416


async def test_archives_span_volumes(client: httpx.AsyncClient, tenant: dict, settings: Settings) -> None:
    settings.transfer_volume_bytes = 65_536
    await fill(client, tenant["headers"], buckets=1, keys=20, objects=3, size=100_000)
    status = await start_export(client, tenant["headers"])
    assert status["archive"]["volumes"] >= 4
    whole = await download(client, tenant["headers"], status["id"])
    assert hashlib.sha256(whole).hexdigest() == status["archive"]["sha256"]
    middle = await client.get(
        f"{API}/exports/{status['id']}/download", headers={**tenant["headers"], "Range": "bytes=60000-140000"}
    )
    assert middle.content == whole[60000:140001]
    other = bearer(await register(client, "bob"))
    done = await run_import(client, other, whole)
    assert done["status"] == "done" and done["report"]["created"] == 23


async def test_conflicts_skip_overwrite_fail(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    await fill(client, headers, buckets=1, keys=10, objects=1)
    archive = await download(client, headers, (await start_export(client, headers))["id"])
    await client.put(f"{API}/kv/buckets/b0/keys/k00001", json={"value": "changed"}, headers=headers)
    await client.delete(f"{API}/kv/buckets/b0/keys/k00002", headers=headers)

    failed = await run_import(client, headers, archive, "fail")
    assert failed["status"] == "failed" and "nothing was written" in failed["error"]
    assert failed["report"]["failed"] == 10 and failed["report"]["created"] == 0  # 9 keys and 1 object exist
    assert {"item": "key b0/k00001", "reason": "exists"} in failed["report"]["failures"]
    assert (await client.get(f"{API}/kv/buckets/b0/keys/k00002", headers=headers)).status_code == 404

    skipped = await run_import(client, headers, archive, "skip")
    assert skipped["report"] | {"failures": []} == {
        "created": 1,
        "skipped": 10,
        "overwritten": 0,
        "failed": 0,
        "failures": [],
        "resumed_at_member": None,
    }
    assert (await client.get(f"{API}/kv/buckets/b0/keys/k00001", headers=headers)).json()["value"] == "changed"

    overwritten = await run_import(client, headers, archive, "overwrite")
    assert overwritten["report"]["overwritten"] == 11 and overwritten["report"]["created"] == 0
    assert (await client.get(f"{API}/kv/buckets/b0/keys/k00001", headers=headers)).json()["value"] == {"n": 1, "s": "x"}


def _rewrite(archive: bytes, change: dict[str, bytes]) -> bytes:
    """The archive with some members' bytes replaced (headers rewritten, the manifest kept)."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as target,
    ):
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            data = change.get(member.name, data)
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    return out.getvalue()


async def test_import_checks_the_manifest_before_writing(client: httpx.AsyncClient, tenant: dict) -> None:
    await fill(client, tenant["headers"], buckets=2, keys=40, objects=1)
    archive = await download(client, tenant["headers"], (await start_export(client, tenant["headers"]))["id"])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        keys = tar.extractfile("kv/keys-000001.ndjson").read()  # type: ignore[union-attr]
    tampered = _rewrite(archive, {"kv/keys-000001.ndjson": keys.replace(b'"n":1', b'"n":7')})
    other = bearer(await register(client, "bob"))
    result = await run_import(client, other, tampered)
    assert result["status"] == "failed" and "kv/keys-000001.ndjson" in result["error"] and "SHA-256" in result["error"]
    buckets = (await client.get(f"{API}/kv/buckets", headers=other)).json()["items"]
    assert [b["name"] for b in buckets if b["keys"]] == []  # nothing written
    garbage = await run_import(client, other, b"not a tar file at all" * 100)
    assert garbage["status"] == "failed" and "invalid archive" in garbage["error"]
    usage = (await client.get(f"{API}/usage", headers=other)).json()
    assert usage["objects"] == 0  # the uploaded archives are gone once their import ended


async def test_another_tenant_sees_nothing(client: httpx.AsyncClient, tenant: dict) -> None:
    await fill(client, tenant["headers"], buckets=1, keys=5, objects=1)
    status = await start_export(client, tenant["headers"])
    other = bearer(await register(client, "mallory"))
    for path in (f"/exports/{status['id']}", f"/exports/{status['id']}/download", f"/imports/{status['id']}"):
        r = await client.get(f"{API}{path}", headers=other)
        assert r.status_code == 404 and r.json()["code"] == "transfer_not_found", path
    # The hidden bucket holding the archive is not listed, and no object route reaches it.
    listed = (await client.get(f"{API}/objects/buckets", headers=tenant["headers"])).json()["items"]
    assert [b["name"] for b in listed] == ["files"]
    r = await client.get(f"{API}/objects/buckets/_transfer/objects", headers=tenant["headers"])
    assert r.status_code == 422
    # Its export holds only its own data.
    own = await start_export(client, other)
    archive = await download(client, other, own["id"])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["counts"]["keys"] == 0 and manifest["counts"]["objects"] == 0


async def test_history_is_replayed_in_order(client: httpx.AsyncClient, tenant: dict) -> None:
    headers = tenant["headers"]
    await client.post(f"{API}/kv/buckets", json={"name": "cfg", "history": 5}, headers=headers)
    for value in ("one", "two", "three"):
        r = await client.put(f"{API}/kv/buckets/cfg/keys/theme", json={"value": value}, headers=headers)
        assert r.status_code in (200, 201)
    status = await start_export(client, headers, buckets=["cfg"], objects=False, history=True)
    archive = await download(client, headers, status["id"])
    other = bearer(await register(client, "bob"))
    assert (await run_import(client, other, archive))["status"] == "done"
    history = (await client.get(f"{API}/kv/buckets/cfg/keys/theme/history", headers=other)).json()
    values = [record.get("value") for record in history["items"]]
    assert values == ["three", "two", "one"]
    bucket = (await client.get(f"{API}/kv/buckets/cfg", headers=other)).json()
    assert bucket["history"] == 5


async def test_export_of_a_missing_bucket_is_404(client: httpx.AsyncClient, tenant: dict) -> None:
    r = await client.post(f"{API}/exports", json={"buckets": ["nope"]}, headers=tenant["headers"])
    assert r.status_code == 404 and r.json()["code"] == "bucket_not_found"
    r = await client.get(f"{API}/exports/nope", headers=tenant["headers"])
    assert r.status_code == 404
    r = await client.post(
        f"{API}/imports", content=b"", headers={**tenant["headers"], "Content-Type": "application/x-tar"}
    )
    assert r.status_code == 400


async def test_api_keys_need_the_scope_and_every_bucket(client: httpx.AsyncClient, tenant: dict) -> None:
    narrow = await create_key(client, tenant["headers"], scopes=["export"], buckets=["b0"])
    r = await client.post(f"{API}/exports", json={}, headers=key_headers(narrow))
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    reader = await create_key(client, tenant["headers"], scopes=["kv:read", "objects:read"])
    r = await client.post(f"{API}/exports", json={}, headers=key_headers(reader))
    assert r.status_code == 403
    exporter = await create_key(client, tenant["headers"], scopes=["export"])
    r = await client.post(f"{API}/exports", json={}, headers=key_headers(exporter))
    assert r.status_code == 202


async def test_exports_count_against_the_object_quota_until_they_expire(
    client: httpx.AsyncClient, tenant: dict, settings: Settings
) -> None:
    await fill(client, tenant["headers"], buckets=1, keys=10, objects=1, size=50_000)
    before = (await client.get(f"{API}/usage", headers=tenant["headers"])).json()
    status = await start_export(client, tenant["headers"])
    during = (await client.get(f"{API}/usage", headers=tenant["headers"])).json()
    assert during["object_bytes"] == before["object_bytes"] + status["archive"]["size"]
    # Expired: the worker's pass deletes the archive and the record.
    store_fields = {"expires": now_ms() - 1}
    from app.platform.redis import create_async_data_redis
    from app.platform.scripts import Scripts

    redis = create_async_data_redis(settings)
    store = TransferStore(redis, Scripts(redis))
    await store.set(tenant["tenant_id"], status["id"], store_fields)
    await store.schedule(tenant["tenant_id"], status["id"], now_ms() - 1)
    await redis.aclose()
    import asyncio

    result = await asyncio.to_thread(transfer_tasks.transfer_pass, lambda *_: None)
    assert result["expired"] == 1
    after = (await client.get(f"{API}/usage", headers=tenant["headers"])).json()
    assert after["object_bytes"] == before["object_bytes"]
    assert (await client.get(f"{API}/exports/{status['id']}", headers=tenant["headers"])).status_code == 404


async def test_an_archive_that_does_not_fit_fails_the_export(
    client: httpx.AsyncClient, tenant: dict, settings: Settings
) -> None:
    await fill(client, tenant["headers"], buckets=1, keys=10, objects=1, size=100_000)
    settings.quota_max_object_bytes = 150_000  # the object fits, a second copy in the archive does not
    r = await client.post(f"{API}/exports", json={}, headers=tenant["headers"])
    status = (await client.get(f"{API}/exports/{r.json()['id']}", headers=tenant["headers"])).json()
    assert status["status"] == "failed" and "quota" in status["error"]
    usage = (await client.get(f"{API}/usage", headers=tenant["headers"])).json()
    assert usage["object_bytes"] == 100_000
