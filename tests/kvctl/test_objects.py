"""kvctl objects against a fake API (httpx.MockTransport): what is sent (streamed, in parts), what is
written, resumed uploads, integrity checks, and the progress bar on a terminal only."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kvctl import objects
from tests.support.kvctl_fakes import problem

pytestmark = pytest.mark.usefixtures("logged_in")

OBJECTS = "/api/v1/objects/buckets/photos/objects"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(name: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"bucket": "photos", "name": name, "size": len(data), "sha256": sha(data), "etag": f'"{sha(data)}"',
            "version": 1, "content_type": "application/octet-stream", **extra}  # fmt: skip


class FakeMultipart:
    """The multipart routes: parts kept in memory, answers as the API gives them."""

    def __init__(self, fail_part: int | None = None, failures: int = 0) -> None:
        self.parts: dict[int, bytes] = {}
        self.fail_part = fail_part
        self.failures = failures
        self.completed: list[int] | None = None
        self.aborted = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/uploads"):
            return httpx.Response(201, json={"upload_id": "up1", "parts": [], "expires_at": "2026-01-02T00:00:00Z"})
        if request.method == "GET" and path.endswith("/uploads/up1"):
            parts = [{"part_number": n, "size": len(b), "sha256": sha(b)} for n, b in sorted(self.parts.items())]
            return httpx.Response(200, json={"upload_id": "up1", "parts": parts})
        if request.method == "PUT" and "/parts/" in path:
            number = int(path.rsplit("/", 1)[1])
            if number == self.fail_part and self.failures > 0:
                self.failures -= 1
                raise httpx.WriteError("connection reset by peer", request=request)
            self.parts[number] = request.content
            return httpx.Response(200, json={"part_number": number, "size": len(request.content),
                                             "sha256": sha(request.content)})  # fmt: skip
        if request.method == "POST" and path.endswith("/complete"):
            self.completed = json.loads(request.content)["parts"]
            data = b"".join(self.parts[n] for n in self.completed)
            return httpx.Response(201, json=stored("big.bin", data))
        if request.method == "DELETE" and path.endswith("/uploads/up1"):
            self.aborted = True
            return httpx.Response(200, json={"message": "aborted"})
        raise AssertionError(f"unexpected {request.method} {path}")


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(objects, "pause", waits.append)
    return waits


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 4 + b"tail")  # 1028 bytes: parts of 400, 400, 228
    return path


def test_put_streams_a_small_file_in_one_request_with_its_metadata(kvctl, tmp_path: Path) -> None:
    photo = tmp_path / "beach.jpg"
    photo.write_bytes(b"\xff\xd8jpeg bytes")
    result = kvctl(
        ["objects", "put", "photos", "2024/beach.jpg", str(photo), "--description", "the beach",
         "--meta", "camera=x100", "--create"],
        lambda r: httpx.Response(201, json=stored("2024/beach.jpg", photo.read_bytes())),
    )  # fmt: skip
    assert result.code == 0, result.err
    (request,) = result.requests
    assert (request.method, request.url.raw_path) == ("PUT", f"{OBJECTS}/2024%2Fbeach.jpg".encode())
    assert request.content == photo.read_bytes()
    assert request.headers["Content-Length"] == str(len(photo.read_bytes()))
    assert request.headers["Content-Type"] == "image/jpeg"  # guessed from the file name
    assert request.headers["X-Object-Description"] == "the beach"
    assert request.headers["X-Object-Meta-camera"] == "x100"
    assert request.headers["If-None-Match"] == "*"
    assert (
        result.out
        == f"uploaded {photo} to photos/2024/beach.jpg: 12 bytes, sha256 {sha(photo.read_bytes())}, version 1\n"
    )


def test_put_notices_when_the_server_stored_other_bytes(kvctl, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello")
    result = kvctl(["objects", "put", "photos", "a", str(path)], lambda r: httpx.Response(201, json=stored("a", b"x")))
    assert result.code == 1
    assert result.err.startswith(f"error: the server stored sha256 {sha(b'x')} but kvctl sent {sha(b'hello')}")


def test_put_from_stdin_streams_a_chunked_body(kvctl, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from a pipe")))
    result = kvctl(["--json", "objects", "put", "photos", "p", "-", "--if-match", "abc"],
                   lambda r: httpx.Response(200, json=stored("p", b"from a pipe")))  # fmt: skip
    assert result.code == 0, result.err
    (request,) = result.requests
    assert request.content == b"from a pipe"
    assert request.headers["Transfer-Encoding"] == "chunked"
    assert request.headers["If-Match"] == '"abc"'
    assert json.loads(result.out)["sha256"] == sha(b"from a pipe")


def test_put_above_the_threshold_is_a_multipart_upload_of_parts_read_from_disk(kvctl, big, config_file) -> None:
    server = FakeMultipart()
    result = kvctl(["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K",
                    "--part-size", "400", "--create"], server)  # fmt: skip
    assert result.code == 0, result.err
    calls = [(r.method, r.url.path.removeprefix(f"{OBJECTS}/big.bin")) for r in result.requests]
    assert calls == [
        ("POST", "/uploads"),
        ("PUT", "/uploads/up1/parts/1"),
        ("PUT", "/uploads/up1/parts/2"),
        ("PUT", "/uploads/up1/parts/3"),
        ("POST", "/uploads/up1/complete"),
    ]
    assert [len(server.parts[n]) for n in (1, 2, 3)] == [400, 400, 228]
    assert b"".join(server.parts[n] for n in (1, 2, 3)) == big.read_bytes()
    assert all(r.headers["Content-Length"] == str(len(r.content)) for r in result.requests[1:4])
    assert result.requests[0].headers["Content-Type"] == "application/octet-stream"
    assert result.requests[4].headers["If-None-Match"] == "*"  # the condition goes with the completion
    assert server.completed == [1, 2, 3]
    assert result.out.startswith(
        f"uploaded {big} to photos/big.bin in 3 parts: 1028 bytes, sha256 {sha(big.read_bytes())}"
    )
    assert not json.loads(config_file.read_text()).get("uploads")  # nothing left to resume


def test_a_file_at_the_threshold_goes_in_one_put(kvctl, big) -> None:
    result = kvctl(["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1028"],
                   lambda r: httpx.Response(201, json=stored("big.bin", big.read_bytes())))  # fmt: skip
    assert [r.method for r in result.requests] == ["PUT"]


def test_a_broken_part_is_sent_again(kvctl, big, no_pause) -> None:
    server = FakeMultipart(fail_part=2, failures=2)
    result = kvctl(["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K",
                    "--part-size", "400"], server)  # fmt: skip
    assert result.code == 0, result.err
    assert [r.url.path.rsplit("/", 1)[1] for r in result.requests if r.method == "PUT"] == ["1", "2", "2", "2", "3"]
    assert b"".join(server.parts[n] for n in (1, 2, 3)) == big.read_bytes()
    assert result.err.count("part 2: ") == 2 and len(no_pause) == 2


def test_an_interrupted_upload_resumes_with_the_missing_parts_only(kvctl, big, config_file, no_pause) -> None:
    server = FakeMultipart(fail_part=2, failures=objects.PART_ATTEMPTS)
    argv = ["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K", "--part-size", "400"]
    first = kvctl(argv, server)
    assert first.code == 2  # the connection's code
    assert "upload up1 kept until 2026-01-02T00:00:00Z: run the same command again" in first.err
    assert not server.aborted
    saved = json.loads(config_file.read_text())["uploads"]
    assert [record["upload_id"] for record in saved.values()] == ["up1"]

    second = kvctl(argv, server)
    assert second.code == 0, second.err
    calls = [(r.method, r.url.path.rsplit("/", 2)[-2:]) for r in second.requests]
    assert calls == [("GET", ["uploads", "up1"]), ("PUT", ["parts", "2"]), ("PUT", ["parts", "3"]),
                     ("POST", ["up1", "complete"])]  # fmt: skip
    assert "resuming upload up1: the server has 1 part(s)" in second.err
    assert b"".join(server.parts[n] for n in server.completed or []) == big.read_bytes()
    assert not json.loads(config_file.read_text())["uploads"]


def test_a_changed_file_is_not_resumed_into_the_old_upload(kvctl, big, config_file, no_pause) -> None:
    server = FakeMultipart(fail_part=3, failures=objects.PART_ATTEMPTS)
    argv = ["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K", "--part-size", "400"]
    assert kvctl(argv, server).code == 2
    big.write_bytes(b"x" * 1100)  # another file now: its parts 1 and 2 are not the ones sent
    result = kvctl(argv, FakeMultipart())
    assert result.code == 0, result.err
    assert [r.method for r in result.requests][:2] == ["POST", "PUT"]  # a new upload, no GET of the old one


def test_a_part_refused_by_the_server_aborts_the_upload(kvctl, big, config_file) -> None:
    server = FakeMultipart()

    def refuse_part_2(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/parts/2"):
            return problem(413, "quota_exceeded", "quota max_object_bytes exceeded")
        return server(request)

    result = kvctl(["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K",
                    "--part-size", "400"], refuse_part_2)  # fmt: skip
    assert result.code == 1
    assert "quota max_object_bytes exceeded (quota_exceeded, HTTP 413)" in result.err
    assert server.aborted
    assert not json.loads(config_file.read_text())["uploads"]


def test_a_part_that_arrives_damaged_is_an_error(kvctl, big) -> None:
    server = FakeMultipart()

    def damage(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/parts/1"):
            return httpx.Response(200, json={"part_number": 1, "size": 400, "sha256": sha(b"other")})
        return server(request)

    result = kvctl(["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K",
                    "--part-size", "400"], damage)  # fmt: skip
    assert result.code == 1
    assert "part 1 arrived damaged" in result.err
    assert server.aborted


def object_answer(data: bytes, status: int = 200, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=data, headers={"ETag": f'"{sha(data)}"', **headers})

    return answer


def test_get_streams_to_a_file_checked_against_the_etag(kvctl, tmp_path: Path) -> None:
    target = tmp_path / "copy.bin"
    data = bytes(range(256)) * 5000
    result = kvctl(["objects", "get", "photos", "2024/beach.jpg", "-o", str(target)], object_answer(data))
    assert result.code == 0, result.err
    assert result.requests[0].url.raw_path == f"{OBJECTS}/2024%2Fbeach.jpg".encode()
    assert target.read_bytes() == data
    assert result.out == f"saved photos/2024/beach.jpg to {target} ({len(data)} bytes)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bin", "kvctl"]  # no temporary file left


def test_get_of_damaged_bytes_leaves_no_file(kvctl, tmp_path: Path) -> None:
    target = tmp_path / "copy.bin"

    def lying(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"garbage", headers={"ETag": f'"{sha(b"the real one")}"'})

    result = kvctl(["objects", "get", "photos", "x", "-o", str(target)], lying)
    assert result.code == 1
    assert "photos/x arrived damaged" in result.err
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kvctl"]


def test_get_writes_to_stdout_by_default(kvctl) -> None:
    result = kvctl(["objects", "get", "photos", "x"], object_answer(b"object bytes"))
    assert (result.code, result.out) == (0, "object bytes")


def test_get_a_range(kvctl) -> None:
    def ranged(request: httpx.Request) -> httpx.Response:
        return httpx.Response(206, content=b"bytes 2-5", headers={"Content-Range": "bytes 2-5/100", "ETag": '"e"'})

    result = kvctl(["objects", "get", "photos", "x", "--range", "2-5"], ranged)
    assert result.code == 0, result.err
    assert result.requests[0].headers["Range"] == "bytes=2-5"
    assert result.out == "bytes 2-5"  # a part is not checked against the whole object's ETag


@pytest.mark.parametrize("spec", ["5-2", "a-b", "-", "1-2,4-5"])
def test_a_malformed_range_is_refused_locally(kvctl, spec: str) -> None:
    result = kvctl(["objects", "get", "photos", "x", "--range", spec])
    assert result.code == 1
    assert result.requests == []
    assert result.err.startswith("error: --range ")


def test_get_of_a_missing_object_is_the_api_error(kvctl, tmp_path: Path) -> None:
    result = kvctl(["objects", "get", "photos", "nope", "-o", str(tmp_path / "f")],
                   lambda r: problem(404, "object_not_found", "Object 'nope' not found"))  # fmt: skip
    assert (result.code, result.err) == (1, "error: Object 'nope' not found (object_not_found, HTTP 404)\n")
    assert not (tmp_path / "f").exists()


def test_ls_lists_buckets_then_objects_following_cursors(kvctl) -> None:
    buckets = {"items": [{"name": "photos", "objects": 2, "bytes": 3 * 1024 * 1024, "chunk_size": 1048576,
                          "description": "holiday"}]}  # fmt: skip
    listed = kvctl(["objects", "ls"], lambda r: httpx.Response(200, json=buckets))
    assert listed.requests[0].url.path == "/api/v1/objects/buckets"
    assert listed.out.splitlines()[1].split() == ["photos", "2", "3.0", "MiB", "1.0", "MiB", "holiday"]
    first = {"name": "a", "size": 1, "updated_at": "T", "content_type": "text/plain"}
    second = {"name": "b/c", "size": 2, "updated_at": "T", "content_type": "image/png"}
    pages = {None: {"items": [first], "next_cursor": "c"}, "c": {"items": [second], "next_cursor": None}}
    every = kvctl(["objects", "ls", "photos", "--prefix", "", "--all-pages", "-q"],
                  lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")]))  # fmt: skip
    assert every.out == "a\nb/c\n"
    assert [r.url.params.get("cursor") for r in every.requests] == [None, "c"]
    one = kvctl(["objects", "ls", "photos", "--limit", "1"], lambda r: httpx.Response(200, json=pages[None]))
    assert one.out.splitlines() == ["NAME  SIZE  UPDATED  CONTENT-TYPE", "a     1     T        text/plain"]
    assert one.err == "1 object(s); more with --all-pages or --cursor c\n"


def test_rm_deletes_each_name_and_if_match_names_one_version(kvctl) -> None:
    result = kvctl(["objects", "rm", "photos", "a", "b/c"], lambda r: httpx.Response(200, json={"message": "ok"}))
    assert [(r.method, r.url.raw_path) for r in result.requests] == [
        ("DELETE", f"{OBJECTS}/a".encode()),
        ("DELETE", f"{OBJECTS}/b%2Fc".encode()),
    ]
    assert result.out == "deleted photos/a\ndeleted photos/b/c\n"
    one = kvctl(["objects", "rm", "photos", "a", "--if-match", '"abc"'], lambda r: httpx.Response(200, json={}))
    assert one.requests[0].headers["If-Match"] == '"abc"'
    two = kvctl(["objects", "rm", "photos", "a", "b", "--if-match", "abc"])
    assert (two.code, two.requests) == (1, [])


def test_verify_ok_damaged_and_against_a_local_file(kvctl, tmp_path: Path) -> None:
    good = {"name": "x", "valid": True, "expected": sha(b"data"), "actual": sha(b"data"), "size": 4,
            "missing_chunks": 0, "hashed_at": "T"}  # fmt: skip
    ok = kvctl(["objects", "verify", "photos", "x"], lambda r: httpx.Response(200, json=good))
    assert ok.requests[0].url.path == f"{OBJECTS}/x/verify"
    assert (ok.code, ok.out) == (0, f"ok photos/x: 4 bytes, sha256 {sha(b'data')}\n")
    bad = {**good, "valid": False, "actual": None, "size": 0, "missing_chunks": 1}
    damaged = kvctl(["objects", "verify", "photos", "x"], lambda r: httpx.Response(200, json=bad))
    assert damaged.code == 1
    assert "stored chunks do not match" in damaged.err and "1 chunk(s) missing" in damaged.err
    local = tmp_path / "local"
    local.write_bytes(b"data")
    same = kvctl(["objects", "verify", "photos", "x", "--file", str(local)], lambda r: httpx.Response(200, json=good))
    assert (same.code, same.out.endswith(f"; {local} matches\n")) == (0, True)
    local.write_bytes(b"changed")
    differs = kvctl(["--json", "objects", "verify", "photos", "x", "--file", str(local)],
                    lambda r: httpx.Response(200, json=good))  # fmt: skip
    assert differs.code == 1
    assert json.loads(differs.out)["local_matches"] is False


def test_object_buckets_create_and_delete(kvctl, monkeypatch) -> None:
    created = kvctl(["objects", "buckets", "create", "photos", "--chunk-size", "4MiB", "--max-object-size", "1G"],
                    lambda r: httpx.Response(201, json={"name": "photos"}))  # fmt: skip
    assert created.requests[0].url.path == "/api/v1/objects/buckets"
    assert created.bodies() == [{"name": "photos", "chunk_size": 4 * 1024 * 1024, "max_object_size": 1024**3}]
    assert created.out == "created object bucket photos\n"
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    refused = kvctl(["objects", "buckets", "delete", "photos", "--force"])
    assert (refused.code, refused.requests) == (1, [])
    assert "pass --yes" in refused.err
    deleted = kvctl(["objects", "buckets", "delete", "photos", "--force", "--yes"],
                    lambda r: httpx.Response(200, json={"message": "ok"}))  # fmt: skip
    assert (deleted.requests[0].method, deleted.requests[0].url.params["force"]) == ("DELETE", "true")


def test_a_bad_size_is_a_usage_error(kvctl, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        kvctl(["objects", "put", "photos", "x", "f", "--part-size", "12 parsecs"])
    assert exit_info.value.code == 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(kvctl, big, monkeypatch) -> None:
    argv = ["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K", "--part-size", "400"]
    piped = kvctl(argv, FakeMultipart())
    assert "\r" not in piped.err and "%" not in piped.err

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert kvctl(argv, FakeMultipart()).code == 0
    drawn = terminal.getvalue()
    assert "\r\x1b[2Kphotos/big.bin 100% [########################] 1.0 KiB/1.0 KiB" in drawn
    assert drawn.endswith("\r\x1b[2K")  # the bar is cleared before the result is printed


def test_objects_alone_lists_the_object_buckets(kvctl) -> None:
    result = kvctl(["--json", "objects"], lambda r: httpx.Response(200, json={"items": []}))
    assert (result.code, result.requests[0].url.path) == (0, "/api/v1/objects/buckets")


def test_get_into_a_missing_directory_is_one_line(kvctl, tmp_path: Path) -> None:
    result = kvctl(["objects", "get", "photos", "x", "-o", str(tmp_path / "no" / "f")], object_answer(b"x"))
    assert (result.code, result.err) == (1, f"error: cannot write {tmp_path / 'no' / 'f'}: No such file or directory\n")


def test_a_fresh_upload_reads_each_part_once(kvctl, big, monkeypatch) -> None:
    hashed: list[int] = []
    real = objects.file_sha256

    def counting(path: Path, offset: int = 0, length: int | None = None) -> str:
        hashed.append(offset)
        return real(path, offset, length)

    monkeypatch.setattr(objects, "file_sha256", counting)
    argv = ["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K", "--part-size", "400"]
    assert kvctl(argv, FakeMultipart()).code == 0
    assert hashed == []  # no part hashed beforehand: only those the server holds when resuming


def test_a_failed_condition_keeps_the_parts_for_a_retry_without_it(kvctl, big, config_file) -> None:
    server = FakeMultipart()

    def precondition(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/complete") and "If-Match" in request.headers:
            return problem(412, "precondition_failed", "The object does not match If-Match")
        return server(request)

    argv = ["objects", "put", "photos", "big.bin", str(big), "--multipart-threshold", "1K", "--part-size", "400"]
    refused = kvctl([*argv, "--if-match", "abc"], precondition)
    assert refused.code == 1
    assert "upload up1 kept until 2026-01-02T00:00:00Z: run again without the failed condition" in refused.err
    assert not server.aborted
    done = kvctl(argv, precondition)
    assert done.code == 0, done.err
    assert [r.method for r in done.requests] == ["GET", "POST"]  # every part was there: only the completion


class BreaksAfter(httpx.SyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset by peer")


def test_a_broken_download_continues_where_it_stopped(kvctl, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    etag = f'"{sha(data)}"'
    target = tmp_path / "copy.bin"
    argv = ["objects", "get", "photos", "x", "-o", str(target)]

    def breaking(request: httpx.Request) -> httpx.Response:
        headers = {"ETag": etag, "Content-Length": str(len(data))}
        return httpx.Response(200, headers=headers, stream=BreaksAfter(data[:4000]))

    first = kvctl(argv, breaking)
    assert first.code == 2
    partial = tmp_path / ".copy.bin.kvctl-part"
    assert f"the partial download stays in {partial}: run the same command again" in first.err
    assert partial.read_bytes() == data[:4000] and not target.exists()

    def rest(request: httpx.Request) -> httpx.Response:
        start = int(request.headers["Range"].removeprefix("bytes=").removesuffix("-"))
        span = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return httpx.Response(206, content=data[start:], headers={"ETag": etag, "Content-Range": span})

    second = kvctl(argv, rest)
    assert second.code == 0, second.err
    (request,) = second.requests
    assert (request.headers["Range"], request.headers["If-Range"]) == ("bytes=4000-", etag)
    assert "resuming the download of photos/x after 4000 bytes" in second.err
    assert target.read_bytes() == data  # and its SHA-256 checked against the ETag, the first 4000 bytes included
    assert second.out == f"saved photos/x to {target} ({len(data)} bytes)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bin", "kvctl"]


def test_a_download_resumed_over_a_changed_object_starts_afresh(kvctl, tmp_path: Path) -> None:
    target = tmp_path / "copy.bin"
    (tmp_path / ".copy.bin.kvctl-part").write_bytes(b"old bytes")
    (tmp_path / ".copy.bin.kvctl-part.etag").write_text('"old"')
    result = kvctl(["objects", "get", "photos", "x", "-o", str(target)], object_answer(b"the new version"))
    assert result.code == 0, result.err
    assert result.requests[0].headers["If-Range"] == '"old"'
    assert target.read_bytes() == b"the new version"  # the server sent it whole (200): nothing appended


def test_a_damaged_resumed_download_is_discarded(kvctl, tmp_path: Path) -> None:
    target = tmp_path / "copy.bin"
    (tmp_path / ".copy.bin.kvctl-part").write_bytes(b"XXXX")  # not the object's first bytes
    (tmp_path / ".copy.bin.kvctl-part.etag").write_text(f'"{sha(b"abcdefgh")}"')

    def rest(request: httpx.Request) -> httpx.Response:
        headers = {"ETag": f'"{sha(b"abcdefgh")}"', "Content-Range": "bytes 4-7/8"}
        return httpx.Response(206, content=b"efgh", headers=headers)

    result = kvctl(["objects", "get", "photos", "x", "-o", str(target)], rest)
    assert result.code == 1
    assert "photos/x arrived damaged" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kvctl"]  # the next attempt starts afresh
