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
