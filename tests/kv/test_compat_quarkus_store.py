"""Clients of the earlier Quarkus KV/object store (seed 000, modelled on NATS): `{"value", "base64"}`
bodies, and `?expectedRevision=N` compared with the key's `metadata.revision` (If-Match and
expected_version keep comparing versions)."""

from __future__ import annotations

import base64

import pytest

from tests.support.kv_api import Api
from tests.support.problems import assert_problem

pytestmark = pytest.mark.contract


async def test_base64_true_stores_bytes_and_false_stores_json(api: Api):
    raw = base64.b64encode(b"\x00\xffbinary").decode()
    stored = await api.must_put("bin", raw, base64=True)
    assert stored["value"] == raw and stored["encoding"] == "base64"
    text = await api.must_put("text", "plain", base64=False)
    assert text["value"] == "plain" and "encoding" not in text
    created = await api.create("made", raw, base64=True)
    assert created.status_code == 201 and created.json()["encoding"] == "base64"
    # The flag and encoding must agree; a bad base64 string is refused as with encoding.
    assert_problem(await api.put("x", raw, base64=False, encoding="base64"), 422)
    assert_problem(await api.put("x", "not base64!", base64=True), 422)
    assert_problem(await api.put("x", raw, base64="yes"), 422)
    assert (await api.get("x")).status_code == 404


async def test_expected_revision_compares_the_keys_revision(api: Api):
    first = await api.must_put("k", 1)
    await api.must_put("other", 1)  # the bucket's revision moves on; k's revision stays
    revision = first["metadata"]["revision"]
    # The revision the client read back is accepted ...
    second = await api.put("k", 2, params={"expectedRevision": revision})
    assert second.status_code == 200, second.text
    new_revision = second.json()["metadata"]["revision"]
    assert new_revision > revision + 1  # revisions are the bucket's: 'other' took one in between
    # ... and a stale one is 412, naming the current version and revision.
    stale = assert_problem(await api.put("k", 3, params={"expectedRevision": revision}), 412, "version_conflict")
    assert stale["current_revision"] == new_revision and stale["current_version"] == 2
    # The version is not a revision: expected_version keeps comparing versions.
    assert (await api.put("k", 3, params={"expected_version": 2})).status_code == 200
    # 0 = the key must not exist (a create), as in NATS.
    assert (await api.put("fresh", 1, params={"expectedRevision": 0})).status_code == 201
    assert_problem(await api.put("fresh", 2, params={"expectedRevision": 0}), 412)


async def test_expected_revision_on_delete_and_merge_patch(api: Api):
    revision = (await api.must_put("doc", {"a": 1}))["metadata"]["revision"]
    await api.must_put("other", 1)
    assert_problem(await api.patch("doc", {"b": 2}, params={"expectedRevision": revision + 1}), 412)
    patched = await api.patch("doc", {"b": 2}, params={"expectedRevision": revision})
    assert patched.status_code == 200, patched.text
    now = patched.json()["metadata"]["revision"]
    assert_problem(await api.delete("doc", params={"expectedRevision": revision}), 412)
    assert (await api.delete("doc", params={"expectedRevision": now})).status_code == 200


# The requests of the Quarkus store's README ("API Beispiele"), replayed as written, with a bearer
# token added (this project authenticates every request; its X-Tenant-ID header has no equivalent:
# the tenant is the token's). The WebSocket watch `ws://.../api/v1/kv/watch/my-bucket` is replayed by
# tests/watch/test_websocket.py (it needs a real server).
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8


async def test_its_readme_key_value_requests(api: Api):
    created = await api.raw(
        "POST",
        "/api/v1/kv/buckets",
        headers={"Content-Type": "application/json"},
        json={"name": "my-bucket", "description": "Mein KV Bucket"},
    )
    assert created.status_code == 201, created.text
    assert (created.json()["name"], created.json()["description"]) == ("my-bucket", "Mein KV Bucket")
    key = "/api/v1/kv/buckets/my-bucket/keys/my-key"
    put = await api.raw("PUT", key, json={"value": "Hallo Welt!", "base64": False})
    assert put.status_code == 201, put.text
    assert put.json()["value"] == "Hallo Welt!" and put.json()["metadata"]["revision"] == 1
    # "Atomares Update (CAS)": only when the current revision is expectedRevision.
    cas = await api.raw("PUT", f"{key}?expectedRevision=1", json={"value": "Neuer Wert", "base64": False})
    assert cas.status_code == 200, cas.text
    assert_problem(await api.raw("PUT", f"{key}?expectedRevision=1", json={"value": "x", "base64": False}), 412)
    got = await api.raw("GET", key)
    assert got.status_code == 200 and got.json()["value"] == "Neuer Wert"
    history = await api.raw("GET", f"{key}/history?limit=10")
    assert history.status_code == 200, history.text
    assert [item["value"] for item in history.json()["items"]] == ["Neuer Wert", "Hallo Welt!"]


async def test_its_readme_object_requests(api: Api):
    created = await api.raw(
        "POST",
        "/api/v1/objects/buckets",
        headers={"Content-Type": "application/json"},
        json={"name": "my-files", "description": "Dateispeicher"},
    )
    assert created.status_code == 201, created.text
    path = "/api/v1/objects/buckets/my-files/objects/dokument.pdf"
    uploaded = await api.raw(
        "PUT",
        path,
        headers={"Content-Type": "application/pdf", "X-Object-Description": "Wichtiges Dokument"},
        content=PDF,
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["description"] == "Wichtiges Dokument" and uploaded.json()["size"] == len(PDF)
    downloaded = await api.raw("GET", path)
    assert downloaded.status_code == 200 and downloaded.content == PDF
    assert downloaded.headers["content-type"] == "application/pdf"
    part = await api.raw("GET", path, headers={"Range": "bytes=0-499"})
    assert part.status_code == 206 and part.content == PDF[:500]
    assert part.headers["content-range"] == f"bytes 0-499/{len(PDF)}"
    verified = await api.raw("GET", f"{path}/verify")
    assert verified.status_code == 200 and verified.json()["valid"] is True


async def test_its_health_metrics_and_api_docs_addresses(api: Api):
    assert (await api.client.get("/health/live")).status_code == 200
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    metrics = await api.client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    for old, new in (("/swagger-ui", "/docs"), ("/openapi", "/openapi.json")):
        moved = await api.client.get(old)
        assert moved.status_code == 308 and moved.headers["location"] == new
        assert (await api.client.get(new)).status_code == 200


async def test_its_tenant_example_needs_a_json_body_and_an_existing_bucket(api: Api):
    """Its multi-tenancy example sends `-d '{"value": ...}'` without a Content-Type (curl then says
    application/x-www-form-urlencoded) into a bucket it never created: here a clear 415, then 404."""
    path = "/api/v1/kv/buckets/shared-bucket/keys/config"
    form = {"X-Tenant-ID": "tenant-a", "Content-Type": "application/x-www-form-urlencoded"}
    refused = assert_problem(await api.raw("PUT", path, headers=form, content=b'{"value": "Config A"}'), 415)
    assert "application/json" in refused["detail"]
    assert_problem(await api.raw("PUT", path, json={"value": "Config A"}), 404, "bucket_not_found")
