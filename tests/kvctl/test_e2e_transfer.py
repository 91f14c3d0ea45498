"""kvctl export and import end to end: `python -m kvctl` against the API served by uvicorn and a Huey
consumer running the export and import jobs, on real redis-servers."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.api_process import ApiProcess
from tests.support.kvctl_process import Kvctl, registered

pytestmark = pytest.mark.subprocess

CONSUMER = True  # the api fixture (conftest.py) runs a Huey consumer beside it


def user(api: ApiProcess, tmp_path: Path, name: str) -> Kvctl:
    return registered(api.url, tmp_path / name / "config.json", f"{name}{uuid.uuid4().hex[:10]}")


def test_export_download_resume_verify_and_import(api: ApiProcess, tmp_path: Path) -> None:
    source = user(api, tmp_path, "src")
    headers = {"Authorization": f"Bearer {source('token').out.strip()}"}
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as http:
        http.post("/api/v1/kv/buckets", json={"name": "config"}).raise_for_status()
        items = [{"key": f"k{i}", "value": {"i": i}, "tags": {"t": "x"}, "ttl": 3600} for i in range(300)]
        http.post("/api/v1/kv/buckets/config/keys/batch", json={"items": items}).raise_for_status()
        http.post("/api/v1/objects/buckets", json={"name": "files"}).raise_for_status()
        http.put("/api/v1/objects/buckets/files/objects/a.bin", content=bytes(range(256)) * 4000).raise_for_status()

    archive = tmp_path / "out.tar"
    run = source("export", "--objects", "-o", str(archive), "--json")
    assert run.code == 0, run.err
    assert '"keys": 300' in run.out and '"objects": 1' in run.out
    job_id = run.out.split('"id": "')[1].split('"')[0]

    # A download cut in the middle: the same export with --id asks for the rest only.
    whole = archive.read_bytes()
    again = tmp_path / "again.tar"
    (tmp_path / ".again.tar.kvctl-part").write_bytes(whole[: len(whole) // 2])
    run = source("export", "--id", job_id, "-o", str(again))
    assert run.code == 0, run.err
    assert "resuming" in run.err and "verified" in run.out
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(whole).digest()

    target = user(api, tmp_path, "dst")
    run = target("import", str(archive))
    assert run.code == 0, run.err + run.out
    assert "301 created, 0 skipped" in run.out
    run = target("import", str(archive))
    assert run.code == 0 and "0 created, 301 skipped" in run.out
    run = target("import", str(archive), "--on-conflict", "fail")
    assert run.code == 1 and "failed" in run.out and "exists" in run.out
    assert '"i": 7' in target("get", "k7", "--bucket", "config", "--json").out

    damaged = tmp_path / "damaged.tar"
    middle = len(whole) // 2  # inside the object's bytes (tar padding is not covered by the sums)
    damaged.write_bytes(whole[:middle] + bytes([whole[middle] ^ 1]) + whole[middle + 1 :])
    run = target("import", str(damaged))
    assert run.code == 1 and "SHA-256" in run.out
