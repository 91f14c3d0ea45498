"""kvctl watch against a fake SSE endpoint: parsing, printing, resume with Last-Event-ID, back-off."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from kvctl import watch
from kvctl.main import main as kvctl_main
from tests.support.kvctl_fakes import problem

pytestmark = pytest.mark.usefixtures("logged_in")

WATCH_PATH = "/api/v1/kv/buckets/default/watch"


def sse(event: str, revision: int, **data: object) -> bytes:
    payload = json.dumps({"revision": revision, **data})
    return f"id: {revision}\nevent: {event}\ndata: {payload}\n\n".encode()


class Dropping(httpx.SyncByteStream):
    """An event stream whose connection breaks after ``chunks``."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.ReadError("connection reset by peer")


SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8"}


def stream(*chunks: bytes, drop: bool = False) -> httpx.Response:
    body = Dropping(*chunks) if drop else httpx.ByteStream(b"".join(chunks))
    return httpx.Response(200, headers=SSE_HEADERS, stream=body)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(watch, "pause", delays.append)
    return delays


def test_events_are_decoded_by_httpx_sse_comments_multiline_data_crlf_and_retry(kvctl, sleeps) -> None:
    body = (
        b": heartbeat\r\nretry: 2500\r\n\r\n"
        b'id: 5\r\nevent: put\r\ndata: {"key": "a", "revision": 5,\r\ndata: "value": 1}\r\n\r\n'
    )
    answers = iter([stream(body, drop=True), stream(sse("put", 6, key="b", value=2))])
    result = kvctl(["watch", "-n", "2"], lambda r: next(answers))
    assert result.code == 0, result.err
    assert result.out == "5 put a = 1\n6 put b = 2\n"
    assert result.requests[1].headers["Last-Event-ID"] == "5"
    assert len(sleeps) == 1 and 2.0 <= sleeps[0] <= 3.0  # the server's retry: 2500 ms, jittered


def test_watch_uses_httpx_sse_not_a_parser_of_its_own() -> None:
    assert watch.EventSource.__module__.startswith("httpx_sse")
    assert not hasattr(watch, "SseParser")


def test_a_200_that_is_not_an_event_stream_is_an_error(kvctl, sleeps) -> None:
    result = kvctl(["watch"], lambda r: httpx.Response(200, html="<html>login</html>"))
    assert (result.code, sleeps) == (1, [])
    assert "did not answer with an event stream" in result.err


def test_watch_help_says_since_replays_after_the_revision(capsys) -> None:
    with pytest.raises(SystemExit):
        kvctl_main(["watch", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "replay the changes after this revision" in text
    assert "from this revision" not in text


def test_watch_prints_events_with_filters(kvctl, sleeps) -> None:
    body = stream(
        b": connected\n\n",
        sse("put", 3, key="app:a", version=1, value={"x": 1}),
        sse("delete", 4, key="app:a", version=2),
    )
    result = kvctl(["watch", "--prefix", "app:", "--since", "2", "-n", "2"], lambda r: body)
    assert result.code == 0, result.err
    (request,) = result.requests
    assert request.url.path == WATCH_PATH
    assert dict(request.url.params) == {"prefix": "app:", "since": "2"}
    assert request.headers["Accept"] == "text/event-stream"
    assert result.out == '3 put app:a = {"x":1}  (version 1)\n4 delete app:a  (version 2)\n'


def test_watch_json_mode_prints_one_event_per_line(kvctl, sleeps) -> None:
    result = kvctl(["--json", "--bucket", "cfg", "watch", "--key", "k", "-n", "1"],
                   lambda r: stream(sse("put", 9, key="k", value=1)))  # fmt: skip
    assert result.requests[0].url.path == "/api/v1/kv/buckets/cfg/watch"
    assert [json.loads(line) for line in result.out.splitlines()] == [
        {"event": "put", "id": "9", "data": {"revision": 9, "key": "k", "value": 1}}
    ]


def test_watch_resumes_after_a_dropped_connection_from_the_last_revision(kvctl, sleeps) -> None:
    answers = iter(
        [
            stream(sse("put", 5, key="a", value=1), sse("put", 6, key="b", value=2), drop=True),
            # The server replays from Last-Event-ID; a repeat of 6 must not be printed twice.
            stream(sse("put", 6, key="b", value=2), sse("put", 7, key="c", value=3)),
        ]
    )
    result = kvctl(["watch", "--since", "5", "-n", "3"], lambda r: next(answers))
    assert result.code == 0, result.err
    first, second = result.requests
    assert first.url.params["since"] == "5" and "Last-Event-ID" not in first.headers
    assert second.headers["Last-Event-ID"] == "6"
    assert "since" not in second.url.params
    assert [line.split()[:3] for line in result.out.splitlines()] == [
        ["5", "put", "a"],
        ["6", "put", "b"],
        ["7", "put", "c"],
    ]
    assert "connection lost (connection reset by peer); reconnecting in" in result.err
    assert "from revision 6" in result.err
    assert len(sleeps) == 1 and 0.4 <= sleeps[0] <= 0.6


def test_watch_backs_off_while_the_server_is_down(kvctl, sleeps) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        calls = len(sleeps)
        if calls == 0:
            return stream(sse("put", 1, key="a", value=1), drop=True)
        if calls < 4:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return stream(sse("put", 2, key="b", value=2))

    result = kvctl(["watch", "-n", "2"], server)
    assert result.code == 0, result.err
    assert [r.headers.get("Last-Event-ID") for r in result.requests] == [None, "1", "1", "1", "1"]
    assert sleeps == sorted(sleeps) and sleeps[-1] > 2 * sleeps[0]  # the delay grows


def test_watch_refreshes_the_token_when_the_stream_reports_expiry(kvctl, sleeps) -> None:
    pair = {"access_token": "access-2", "refresh_token": "refresh-2", "expires_in": 1800}
    error = b'event: error\ndata: {"code": "invalid_token", "detail": "Token has expired"}\n\n'

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/refresh":
            return httpx.Response(200, json=pair)
        if request.headers["Authorization"] == "Bearer access-1":
            return stream(sse("put", 1, key="a", value=1), error)
        return stream(sse("put", 2, key="b", value=2))

    result = kvctl(["watch", "-n", "2"], server)
    assert result.code == 0, result.err
    assert [r.url.path for r in result.requests] == [WATCH_PATH, "/api/v1/auth/refresh", WATCH_PATH]
    assert result.requests[2].headers["Last-Event-ID"] == "1"
    assert sleeps == []  # resumed at once


def test_watch_refused_at_start_is_an_error_not_a_retry(kvctl, sleeps) -> None:
    result = kvctl(["watch"], lambda r: problem(429, "too_many_watch_streams", "at most 100 open watch streams"))
    assert (result.code, len(result.requests), sleeps) == (1, 1, [])
    assert result.err == "error: at most 100 open watch streams (too_many_watch_streams, HTTP 429)\n"


def test_watch_unreachable_at_start_exits_2(kvctl, sleeps) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = kvctl(["watch"], refuse)
    assert (result.code, sleeps) == (2, [])


def test_ctrl_c_ends_watch_cleanly(kvctl, sleeps) -> None:
    class Interrupted(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield sse("put", 1, key="a", value=1)
            raise KeyboardInterrupt

    result = kvctl(["watch"], lambda r: httpx.Response(200, headers=SSE_HEADERS, stream=Interrupted()))
    assert result.code == 130  # as README says of an interrupted command
    assert result.out == "1 put a = 1\n"
    assert result.err == ""


def test_heartbeat_with_an_id_moves_the_resume_position(kvctl, sleeps) -> None:
    answers = iter(
        [
            stream(sse("put", 3, key="a", value=1), b": heartbeat\nid: 9\n\n", drop=True),
            stream(sse("put", 10, key="b", value=2)),
        ]
    )
    result = kvctl(["watch", "--prefix", "a", "-n", "2"], lambda r: next(answers))
    assert result.code == 0, result.err
    assert result.requests[1].headers["Last-Event-ID"] == "9"


def test_error_event_resumes_from_the_revision_the_server_names(kvctl, sleeps) -> None:
    error = b'event: error\ndata: {"code": "slow_consumer", "detail": "too far behind", "resume_from": 4}\n\n'
    answers = iter([stream(sse("put", 3, key="a", value=1), error), stream(sse("put", 5, key="b", value=2))])
    result = kvctl(["watch", "-n", "2"], lambda r: next(answers))
    assert result.code == 0, result.err
    assert result.requests[1].headers["Last-Event-ID"] == "4"
    assert "connection lost (too far behind (slow_consumer)); reconnecting in" in result.err


def test_snapshot_then_ready_then_changes(kvctl, sleeps) -> None:
    snapshot = b'event: snapshot\ndata: {"key": "a", "revision": 2, "version": 1, "value": "x"}\n\n'
    ready = b'id: 7\nevent: ready\ndata: {"revision": 7, "entries": 1, "reason": "requested"}\n\n'
    result = kvctl(
        ["watch", "--snapshot", "-n", "2"], lambda r: stream(snapshot, ready, sse("put", 8, key="b", value=1))
    )
    assert result.requests[0].url.params["snapshot"] == "true"
    assert result.out == "2 snapshot a = x  (version 1)\n8 put b = 1\n"
    assert result.err == "watch: snapshot of 1 entries at revision 7; following changes\n"


def test_purge_ends_the_watch(kvctl, sleeps) -> None:
    purge = sse("purge", 12, key="", version=0)
    result = kvctl(["--bucket", "cfg", "watch"], lambda r: stream(purge))
    assert (result.code, result.out, result.err) == (0, "12 purge\n", "watch: the bucket was deleted\n")


def test_bucket_deleted_error_is_final(kvctl, sleeps) -> None:
    data = {"code": "bucket_not_found", "detail": "bucket 'cfg' was deleted", "resume_from": 3}
    error = b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    result = kvctl(["--bucket", "cfg", "watch"], lambda r: stream(error))
    assert (result.code, len(result.requests), sleeps) == (1, 1, [])
    assert result.err == "error: bucket 'cfg' was deleted (bucket_not_found)\n"
