"""kvctl commands against a fake API (httpx.MockTransport): requests sent, output printed, exit codes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from tests.support.kvctl_fakes import entry, problem

pytestmark = pytest.mark.usefixtures("logged_in")


def test_put_sends_json_value_ttl_tags_and_if_match(kvctl) -> None:
    result = kvctl(
        ["put", "cfg:a", '{"on": true}', "--ttl", "60", "--tag", "env=prod", "--tag", "team=core", "--if-match", "3"],
        lambda r: httpx.Response(200, json=entry("cfg:a", {"on": True}, version=4, revision=9)),
    )
    assert result.code == 0, result.err
    (request,) = result.requests
    assert (request.method, request.url.raw_path) == ("PUT", b"/api/v1/kv/cfg%3Aa")
    assert request.headers["If-Match"] == '"3"'
    assert request.headers["Authorization"] == "Bearer access-1"
    assert result.bodies() == [{"value": {"on": True}, "ttl": 60, "tags": {"env": "prod", "team": "core"}}]
    assert result.out == "OK cfg:a version 4 revision 9\n"


def test_put_create_only_sends_if_none_match(kvctl) -> None:
    result = kvctl(["put", "k", "hello", "--create"], lambda r: httpx.Response(201, json=entry("k", "hello")))
    assert result.requests[0].headers["If-None-Match"] == "*"
    assert result.bodies() == [{"value": "hello"}]


def test_put_binary_file_as_base64_in_a_bucket(kvctl, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\xff\x10")
    result = kvctl(
        ["--bucket", "files", "put", "b", "--file", str(blob), "--base64"],
        lambda r: httpx.Response(201, json=entry("b", "AP8Q", encoding="base64")),
    )
    assert result.code == 0, result.err
    assert result.requests[0].url.path == "/api/v1/kv/buckets/files/keys/b"
    assert result.bodies() == [{"value": base64.b64encode(b"\x00\xff\x10").decode(), "encoding": "base64"}]


def test_put_file_with_json_document(kvctl, tmp_path: Path) -> None:
    doc = tmp_path / "doc.json"
    doc.write_text('{\n  "a": [1, 2]\n}\n')
    result = kvctl(["put", "d", "--file", str(doc)], lambda r: httpx.Response(200, json=entry("d", {"a": [1, 2]})))
    assert result.bodies() == [{"value": {"a": [1, 2]}}]


def test_put_non_utf8_file_without_base64_is_refused_locally(kvctl, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\xfe")
    result = kvctl(["put", "b", "--file", str(blob)])
    assert result.code == 1
    assert result.requests == []
    assert "--base64" in result.err


def test_put_without_value_is_an_error(kvctl) -> None:
    result = kvctl(["put", "k"])
    assert (result.code, result.err) == (1, "error: missing VALUE (or --file PATH, - for stdin)\n")


def test_get_prints_string_raw_and_json_pretty(kvctl) -> None:
    text = kvctl(["get", "k"], lambda r: httpx.Response(200, json=entry("k", "plain text")))
    assert text.out == "plain text\n"
    doc = kvctl(["get", "k"], lambda r: httpx.Response(200, json=entry("k", {"a": 1})))
    assert json.loads(doc.out) == {"a": 1}


def test_get_json_mode_prints_the_whole_entry(kvctl) -> None:
    body = entry("k", [1, 2], version=3, revision=5)
    result = kvctl(["get", "k", "--json"], lambda r: httpx.Response(200, json=body))
    assert json.loads(result.out) == body


def test_get_revision_and_binary_output_file(kvctl, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    result = kvctl(
        ["get", "b", "--revision", "4", "-o", str(target)],
        lambda r: httpx.Response(200, json=entry("b", base64.b64encode(b"\x01\x02").decode(), encoding="base64")),
    )
    assert result.code == 0, result.err
    assert result.requests[0].url.params["revision"] == "4"
    assert target.read_bytes() == b"\x01\x02"


def test_get_writes_binary_bytes_to_a_pipe_and_text_as_stored(kvctl) -> None:
    binary = kvctl(["get", "b"], lambda r: httpx.Response(200, json=entry("b", "AQJB", encoding="base64")))
    assert binary.out == "\x01\x02A"
    text = kvctl(["get", "t"], lambda r: httpx.Response(200, json=entry("t", "line 1\nline 2\n")))
    assert text.out == "line 1\nline 2\n"


def test_http_error_is_one_line_with_detail_and_code(kvctl) -> None:
    result = kvctl(["get", "nope"], lambda r: problem(404, "key_not_found", "Key 'nope' not found"))
    assert result.code == 1
    assert result.err == "error: Key 'nope' not found (key_not_found, HTTP 404)\n"
    assert result.out == ""


def test_http_error_in_json_mode_is_machine_readable(kvctl) -> None:
    result = kvctl(["--json", "put", "k", "1", "--if-match", "2"], lambda r: problem(412, "version_conflict", "at 3"))
    assert result.code == 1
    error = json.loads(result.err)
    assert (error["code"], error["status"], error["error"]) == ("version_conflict", 412, "at 3")


def test_non_problem_error_page_still_gives_one_line(kvctl) -> None:
    result = kvctl(["get", "k"], lambda r: httpx.Response(502, text="<html><h1>Bad Gateway</h1></html>"))
    assert result.code == 1
    assert result.err.startswith("error: Bad Gateway: <html>")
    assert result.err.count("\n") == 1


def test_connection_refused_exits_2_without_traceback(kvctl) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = kvctl(["get", "k"], refuse)
    assert result.code == 2
    assert result.err == "error: cannot connect to http://kv.test: [Errno 111] Connection refused\n"
    assert "Traceback" not in result.err


def test_timeout_exits_2(kvctl) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    result = kvctl(["list"], slow)
    assert result.code == 2
    assert "did not answer in time" in result.err


def test_delete_with_if_match(kvctl) -> None:
    result = kvctl(
        ["delete", "k", "--if-match", "2"], lambda r: httpx.Response(200, json={"message": "Key deleted successfully"})
    )
    assert (result.code, result.out) == (0, "deleted k\n")
    request = result.requests[0]
    assert (request.method, request.url.path, request.headers["If-Match"]) == ("DELETE", "/api/v1/kv/k", '"2"')


def test_list_table_and_filters(kvctl) -> None:
    page = {
        "items": [entry("a", "x", tags={"env": "prod"}, ttl=30), entry("b", {"n": 1}, version=2)],
        "total": 2,
        "page": 1,
        "page_size": 100,
        "next_cursor": None,
    }
    result = kvctl(
        ["list", "--prefix", "a", "--tag", "env:prod", "--tag", "team=x"], lambda r: httpx.Response(200, json=page)
    )
    params = result.requests[0].url.params
    assert params["prefix"] == "a"
    assert params.get_list("tag_filter") == ["env:prod", "team:x"]
    lines = result.out.splitlines()
    assert lines[0].split() == ["KEY", "VERSION", "TTL", "TAGS", "VALUE"]
    assert lines[1].split() == ["a", "1", "30s", "env=prod", "x"]
    assert lines[2].split() == ["b", "2", "-", "-", '{"n":1}']
    assert result.err == "2 key(s) of 2\n"


def test_list_all_pages_follows_next_cursor(kvctl) -> None:
    pages = {
        None: {"items": [entry("a", 1)], "total": 2, "page": None, "page_size": 1000, "next_cursor": "c1"},
        "c1": {"items": [entry("b", 2)], "total": 2, "page": None, "page_size": 1000, "next_cursor": None},
    }
    result = kvctl(
        ["all", "--all-pages", "--json"], lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")])
    )
    assert [r.url.params.get("cursor") for r in result.requests] == [None, "c1"]
    assert all(r.url.params["limit"] == "1000" for r in result.requests)
    body = json.loads(result.out)
    assert [item["key"] for item in body["items"]] == ["a", "b"]
    assert body["next_cursor"] is None


def test_list_one_page_tells_how_to_get_more(kvctl) -> None:
    page = {"items": [entry("a", 1)], "total": 5, "page": None, "page_size": 1, "next_cursor": "c1"}
    result = kvctl(["list", "--limit", "1", "-q"], lambda r: httpx.Response(200, json=page))
    assert result.out == "a\n"
    assert result.err == "1 key(s) of 5; more with --all-pages or --cursor c1\n"


def test_history_table(kvctl) -> None:
    body = {
        "key": "k",
        "items": [
            {"version": 2, "revision": 7, "operation": "delete", "value": None, "updated_at": "T2", "tags": None},
            {"version": 1, "revision": 3, "operation": "put", "value": "v1", "updated_at": "T1", "tags": {}},
        ],
    }
    result = kvctl(["history", "k", "--limit", "5"], lambda r: httpx.Response(200, json=body))
    assert result.requests[0].url.path == "/api/v1/kv/k/history"
    assert result.requests[0].url.params["limit"] == "5"
    rows = [line.split() for line in result.out.splitlines()]
    assert rows == [
        ["REVISION", "VERSION", "OPERATION", "UPDATED", "VALUE"],
        ["7", "2", "delete", "T2", "null"],
        ["3", "1", "put", "T1", "v1"],
    ]


def test_populate_writes_batches_of_at_most_1000(kvctl) -> None:
    result = kvctl(
        ["populate", "2500", "--prefix", "s:"],
        lambda r: httpx.Response(200, json={"items": []}),
    )
    assert result.code == 0, result.err
    assert [r.url.path for r in result.requests] == ["/api/v1/kv/batch"] * 3
    batches = [body["items"] for body in result.bodies()]
    assert [len(b) for b in batches] == [1000, 1000, 500]
    keys = [item["key"] for batch in batches for item in batch]
    assert keys[0] == "s:000000" and keys[-1] == "s:002499" and len(set(keys)) == 2500
    assert batches[0][3]["value"] == {"index": 3, "name": "sample 3", "even": False}
    assert batches[0][3]["tags"] == {"source": "populate", "group": "g3"}
    assert result.out.startswith("wrote 2500 keys s:000000..s:002499 in ")


def test_populate_stops_at_the_first_refused_batch(kvctl) -> None:
    result = kvctl(["populate", "10", "--batch-size", "4"], lambda r: problem(413, "payload_too_large", "too big"))
    assert result.code == 1
    assert len(result.requests) == 1
    assert "too big (payload_too_large, HTTP 413)" in result.err


def test_buckets_list_create_info_delete(kvctl) -> None:
    bucket = {"name": "cfg", "description": "settings", "history": 5, "ttl": 0, "keys": 3, "revision": 9}
    listed = kvctl(["buckets"], lambda r: httpx.Response(200, json={"items": [bucket]}))
    assert listed.out.splitlines()[1].split() == ["cfg", "3", "5", "-", "settings"]
    created = kvctl(["buckets", "create", "cfg", "--history", "5", "--description", "settings"],
                    lambda r: httpx.Response(201, json=bucket))  # fmt: skip
    assert created.bodies() == [{"name": "cfg", "history": 5, "description": "settings"}]
    assert created.out == "created bucket cfg\n"
    info = kvctl(["buckets", "info", "cfg", "--json"], lambda r: httpx.Response(200, json=bucket))
    assert json.loads(info.out) == bucket
    deleted = kvctl(["buckets", "delete", "cfg", "--yes"], lambda r: httpx.Response(200, json={"message": "ok"}))
    assert (deleted.requests[0].method, deleted.requests[0].url.path) == ("DELETE", "/api/v1/kv/buckets/cfg")
    assert deleted.out == "deleted bucket cfg\n"


def test_buckets_delete_without_yes_and_without_a_terminal_refuses(kvctl, logged_in, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    result = kvctl(["buckets", "delete", "cfg"])  # no handler: any request would fail the test
    assert result.code == 1
    assert result.err == "error: not deleted: pass --yes to delete bucket cfg (no terminal to ask on)\n"
