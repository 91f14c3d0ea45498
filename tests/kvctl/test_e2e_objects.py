"""kvctl objects, usage and audit end to end: `python -m kvctl` subprocesses against the API served by
uvicorn on a real socket (and a Huey consumer recording the audit trail), on real redis-servers."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.api_process import ApiProcess
from tests.support.kvctl_process import Kvctl, registered
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.subprocess

CONSUMER = True  # the api fixture (conftest.py) runs a Huey consumer beside it

MiB = 1024 * 1024


@pytest.fixture
def cli(api: ApiProcess, tmp_path: Path) -> Kvctl:
    """A kvctl with a freshly registered (and so logged-in) user of its own."""
    return registered(api.url, tmp_path / "kvctl" / "config.json", f"obj{uuid.uuid4().hex[:12]}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_objects_put_get_range_ls_verify_rm(cli: Kvctl, tmp_path: Path) -> None:
    assert cli("objects", "buckets", "create", "photos", "--chunk-size", "64KiB").code == 0
    small = tmp_path / "note.txt"
    small.write_text("hello objects\n")
    put = cli("--json", "objects", "put", "photos", "notes/hello.txt", str(small), "--meta", "lang=en")
    assert put.code == 0, put.err
    assert (json.loads(put.out)["content_type"], json.loads(put.out)["metadata"]) == ("text/plain", {"lang": "en"})
    again = cli("objects", "put", "photos", "notes/hello.txt", str(small), "--create")
    assert again.code == 1 and "HTTP 412)" in again.err

    assert cli("objects", "get", "photos", "notes/hello.txt").out == "hello objects\n"
    assert cli("objects", "get", "photos", "notes/hello.txt", "--range", "6-12").out == "objects"
    assert cli("objects", "get", "photos", "notes/hello.txt", "--range", "-3").out == "ts\n"
    copy = tmp_path / "copy.txt"
    saved = cli("objects", "get", "photos", "notes/hello.txt", "-o", str(copy))
    assert saved.out == f"saved photos/notes/hello.txt to {copy} (14 bytes)\n"
    assert copy.read_bytes() == small.read_bytes()
    outside = cli("objects", "get", "photos", "notes/hello.txt", "--range", "100-")
    assert outside.code == 1 and "HTTP 416)" in outside.err

    assert cli("objects", "ls", "photos", "-q").out == "notes/hello.txt\n"
    buckets = cli("objects", "ls").out.splitlines()
    assert buckets[1].split()[:2] == ["photos", "1"]
    verified = cli("objects", "verify", "photos", "notes/hello.txt", "--file", str(small))
    assert verified.code == 0, verified.err
    assert verified.out == f"ok photos/notes/hello.txt: 14 bytes, sha256 {sha256(small)}; {small} matches\n"

    assert cli("objects", "rm", "photos", "notes/hello.txt").out == "deleted photos/notes/hello.txt\n"
    gone = cli("objects", "get", "photos", "notes/hello.txt")
    assert gone.code == 1 and "HTTP 404)" in gone.err
    assert cli("objects", "buckets", "delete", "photos", "--yes").out == "deleted object bucket photos\n"


def test_a_file_above_the_threshold_goes_up_in_parts_and_comes_back_identical(cli: Kvctl, tmp_path: Path) -> None:
    assert cli("objects", "buckets", "create", "media").code == 0
    movie = tmp_path / "movie.bin"
    movie.write_bytes(os.urandom(1 * MiB + 12345))
    put = cli(
        "objects", "put", "media", "movie.bin", str(movie), "--multipart-threshold", "512K", "--part-size", "256K"
    )
    assert put.code == 0, put.err
    size = 1 * MiB + 12345
    digest = sha256(movie)
    assert put.out == f"uploaded {movie} to media/movie.bin in 5 parts: {size} bytes, sha256 {digest}, version 1\n"
    assert "\r" not in put.err  # no progress bar when stderr is not a terminal
    assert json.loads(Path(cli.env["KVCTL_CONFIG"]).read_text()).get("uploads") == {}  # nothing left to resume

    copy = tmp_path / "copy.bin"
    assert cli("objects", "get", "media", "movie.bin", "-o", str(copy)).code == 0
    assert copy.read_bytes() == movie.read_bytes()
    part = cli("objects", "get", "media", "movie.bin", "--range", f"{MiB}-{MiB + 99}", "-o", str(tmp_path / "part"))
    assert part.code == 0, part.err
    assert (tmp_path / "part").read_bytes() == movie.read_bytes()[MiB : MiB + 100]
    assert part.out.endswith(f"(100 bytes, bytes {MiB}-{MiB + 99}/{1 * MiB + 12345})\n")
    assert cli("objects", "verify", "media", "movie.bin").code == 0


def test_an_interrupted_multipart_upload_resumes(api: ApiProcess, cli: Kvctl, tmp_path: Path) -> None:
    """The server becomes unreachable mid-upload: kvctl keeps the upload and exits 2; the same
    command run again sends only the parts the server lacks."""
    assert cli("objects", "buckets", "create", "big").code == 0
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(96 * MiB))
    proxy = TcpProxy(api.port)
    through = Kvctl(proxy.url, tmp_path / "through.json")
    assert through("login", "-u", cli.username).code == 0
    auth = {"Authorization": f"Bearer {cli('token').out.strip()}"}
    argv = ("objects", "put", "big", "blob.bin", str(blob), "--multipart-threshold", "1M", "--part-size", "1M")
    upload = through.start(*argv)
    try:
        deadline = time.monotonic() + 30
        while True:  # until the server holds a few parts
            assert time.monotonic() < deadline, upload.stderr
            pending = json.loads((tmp_path / "through.json").read_text()).get("uploads")
            if pending:
                (record,) = pending.values()
                url = f"{api.url}/api/v1/objects/buckets/big/objects/blob.bin/uploads/{record['upload_id']}"
                if len(httpx.get(url, headers=auth).json()["parts"]) >= 2:
                    break
            time.sleep(0.02)
        proxy.pause()
        proxy.drop()
        assert upload.process.wait(30) == 2  # the connection's code, after retrying the part
        kept = f"upload {record['upload_id']} kept until 20"  # the server's expires_at, a date
        assert any(kept in (line or "") and "run the same command again" in line for line in upload.stderr)
        proxy.resume()
        resumed = through(*argv)
    finally:
        upload.stop()
        proxy.close()
    assert resumed.code == 0, resumed.err
    assert f"resuming upload {record['upload_id']}: the server has " in resumed.err
    already = int(resumed.err.split("the server has ")[1].split(" ")[0])
    assert 2 <= already < 96
    copy = tmp_path / "copy.bin"
    assert cli("objects", "get", "big", "blob.bin", "-o", str(copy)).code == 0
    assert sha256(copy) == sha256(blob)


def test_an_interrupted_download_continues(api: ApiProcess, cli: Kvctl, tmp_path: Path) -> None:
    """The server goes away mid-download: the partial file stays (PATH is not created) and the same
    command fetches only the rest (Range + If-Range), checked as a whole against the ETag."""
    assert cli("objects", "buckets", "create", "dl").code == 0
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(96 * MiB))
    assert cli("objects", "put", "dl", "blob.bin", str(blob)).code == 0
    proxy = TcpProxy(api.port)
    through = Kvctl(proxy.url, tmp_path / "through.json")
    assert through("login", "-u", cli.username).code == 0
    copy, partial = tmp_path / "copy.bin", tmp_path / ".copy.bin.kvctl-part"
    download = through.start("objects", "get", "dl", "blob.bin", "-o", str(copy))
    try:
        deadline = time.monotonic() + 30
        while not (partial.exists() and partial.stat().st_size > 0):
            assert time.monotonic() < deadline and download.process.poll() is None, download.stderr
            time.sleep(0.002)
        proxy.pause()
        proxy.drop()
        assert download.process.wait(30) == 2, download.stderr
        assert not copy.exists()
        kept = partial.stat().st_size
        assert 0 < kept < 96 * MiB
        proxy.resume()
        resumed = through("objects", "get", "dl", "blob.bin", "-o", str(copy))
    finally:
        download.stop()
        proxy.close()
    assert resumed.code == 0, resumed.err
    assert f"resuming the download of dl/blob.bin after {kept} bytes" in resumed.err
    assert sha256(copy) == sha256(blob)
    assert not partial.exists()


def peak_rss_kib(cli: Kvctl, *args: str) -> int:
    """Run kvctl in a child that reports its own peak RSS (KiB) on its last stderr line."""
    code = (  # VmHWM, not ru_maxrss: that one keeps the forking test process's peak across exec
        "import re, runpy, sys\n"
        f"sys.argv = ['kvctl', *{list(args)!r}]\n"
        "try:\n    runpy.run_module('kvctl', run_name='__main__')\n"
        "finally:\n"
        "    status = open('/proc/self/status').read()\n"
        "    print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1])


def test_put_and_get_of_a_large_file_stream_from_and_to_disk(cli: Kvctl, tmp_path: Path) -> None:
    """Neither direction holds the file in memory: kvctl's peak RSS grows by far less than the file."""
    assert cli("objects", "buckets", "create", "stream").code == 0
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(64 * MiB))
    baseline = peak_rss_kib(cli, "objects", "ls", "stream")
    multipart = peak_rss_kib(cli, "objects", "put", "stream", "m", str(blob), "--multipart-threshold", "8M",
                             "--part-size", "8M")  # fmt: skip
    single = peak_rss_kib(cli, "objects", "put", "stream", "s", str(blob))  # under the 64 MiB threshold
    download = peak_rss_kib(cli, "objects", "get", "stream", "m", "-o", str(tmp_path / "copy.bin"))
    assert sha256(tmp_path / "copy.bin") == sha256(blob)
    growth_mib = [round((rss - baseline) / 1024, 1) for rss in (multipart, single, download)]
    print(f"kvctl peak RSS KiB: ls {baseline}, multipart {multipart}, put {single}, get {download}: {growth_mib}")
    assert max(growth_mib) < 16, growth_mib  # a 64 MiB file: pieces of 1 MiB, never the file


def test_usage_counts_what_kvctl_stored(cli: Kvctl, tmp_path: Path) -> None:
    assert cli("put", "u:a", "1").code == 0
    assert cli("objects", "buckets", "create", "u").code == 0
    blob = tmp_path / "b"
    blob.write_bytes(b"x" * 3000)
    assert cli("objects", "put", "u", "b", str(blob)).code == 0
    usage = json.loads(cli("usage", "--json").out)
    assert (usage["keys"], usage["objects"], usage["object_bytes"]) == (1, 1, 3000)
    table = {line.split("  ")[0]: line for line in cli("usage").out.splitlines()}
    assert table["keys"].split()[1] == "1"
    assert table["objects"].split()[1] == "1"


def test_audit_lists_and_follows_the_trail(cli: Kvctl) -> None:
    assert cli("put", "audited", "1").code == 0
    deadline = time.monotonic() + 20
    while True:  # the worker records events a moment after the request
        listed = json.loads(cli("--json", "audit", "--action", "kv.put_key").out)
        if listed["items"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(e["action"], e["key"], e["status"]) for e in listed["items"]] == [("kv.put_key", "audited", 201)]
    every = json.loads(cli("--json", "audit", "--all-pages").out)
    assert {"auth.register", "kv.put_key"} <= {e["action"] for e in every["items"]}
    table = cli("audit", "--limit", "1")
    assert table.out.splitlines()[0].split() == ["TIME", "ACTION", "STATUS", "BUCKET", "KEY", "USER", "CLIENT"]
    assert "older ones with --all-pages or --cursor " in table.err

    follower = cli.start("--json", "audit", "--follow", "--limit", "1", "--interval", "0.2", "--key", "followed")
    try:
        assert cli("put", "followed", "1").code == 0
        assert cli("delete", "followed").code == 0
        seen = [json.loads(follower.next_line(timeout=20)) for _ in range(2)]
        assert [(e["action"], e["key"]) for e in seen] == [("kv.put_key", "followed"), ("kv.delete_key", "followed")]
        follower.process.send_signal(signal.SIGINT)
        assert follower.process.wait(10) == 130
    finally:
        follower.stop()
