"""Pieces without a server: SSE and WebSocket framing, where a stream starts, a full queue."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.watch.events import FeedEvent, event_data, socket_message, sse_comment, sse_frame
from app.watch.hub import CUT_OFF, Subscription
from app.watch.service import WatchSession


def test_sse_frame_splits_line_breaks_into_data_lines() -> None:
    assert sse_frame("put", b'{"a":1}', 7) == b'id: 7\nevent: put\ndata: {"a":1}\n\n'
    assert sse_frame("ready", b"x\r\ny\nz") == b"event: ready\ndata: x\ndata: y\ndata: z\n\n"
    assert sse_comment("heartbeat") == b": heartbeat\n\n"
    assert sse_comment("heartbeat", 12) == b": heartbeat\nid: 12\n\n"


def test_socket_message_is_one_json_object() -> None:
    assert json.loads(socket_message("put", b'{"key":"k"}', 3)) == {"id": 3, "event": "put", "data": {"key": "k"}}
    assert json.loads(socket_message("snapshot", b"{}"))["id"] is None


def test_event_data_of_a_put_and_of_a_delete() -> None:
    fields = {b"op": b"put", b"key": b"k", b"ver": b"2", b"u": b"1000", b"enc": b"base64", b"tags": b'{"t":"1"}'}
    put = FeedEvent.parse(b"9-0", {**fields, b"x": b"61000", b"v": b'"AAE="'})
    assert json.loads(put.data(True)) == {
        "key": "k",
        "revision": 9,
        "version": 2,
        "value": "AAE=",
        "encoding": "base64",
        "tags": {"t": "1"},
        "ttl": 0,  # expired by now: never negative
        "expires_at": "1970-01-01T00:01:01.000Z",
        "updated_at": "1970-01-01T00:00:01.000Z",
    }
    assert "value" not in json.loads(put.data(False)) and "encoding" not in json.loads(put.data(False))
    gone = FeedEvent.parse(b"10-0", {b"op": b"delete", b"key": b"k", b"ver": b"2", b"u": b"2000"})
    assert json.loads(gone.data(True))["value"] is None and json.loads(gone.data(True))["tags"] is None
    body = event_data(key="k", revision=1, version=1, updated_ms=0, now_ms=0, include_value=True, value=b"[1,\n2]")
    assert json.loads(body)["value"] == [1, 2]


@pytest.mark.parametrize(
    ("revision", "first", "since", "snapshot", "reason"),
    [
        (10, 1, None, False, None),  # live only
        (10, 1, None, True, "requested"),
        (10, 1, 4, True, None),  # resuming: no snapshot
        (10, 5, 4, False, None),  # revision 5 is the first one missing: still there
        (10, 6, 4, False, "trimmed"),
        (10, None, 4, False, "trimmed"),  # no stream, the bucket moved on
        (10, None, 10, False, None),
        (10, 1, 11, False, "trimmed"),  # beyond the bucket: an earlier bucket of that name
    ],
)
def test_where_a_stream_starts(revision, first, since, snapshot, reason) -> None:
    assert WatchSession._reset_reason(revision, first, since, snapshot) == reason


async def test_a_full_queue_cuts_the_watcher_off_and_drops_what_it_held() -> None:
    cut_off = asyncio.Event()
    subscription = Subscription(None, 0, None, "a", 2, cut_off)
    events = [FeedEvent(revision=n, op="put", key=key, version=1, updated_ms=0) for n, key in enumerate("abaa", 1)]
    assert [subscription.offer(e) for e in events[:3]] == [True, True, True]  # "b" does not match the prefix
    assert subscription.seen == 3 and subscription.queue.qsize() == 2
    assert subscription.offer(events[3]) is False
    assert subscription.failure == "slow_consumer" and cut_off.is_set()
    assert subscription.queue.get_nowait() is CUT_OFF and subscription.queue.empty()
