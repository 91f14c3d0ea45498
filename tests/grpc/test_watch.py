"""kvstore.v1.KV/Watch and the Go store's KvStore/Watch: live changes, snapshots, resumption from a
revision without a gap, filters, tenant isolation, refusals and the end of a stream."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from app.grpc.gen import kvstore_pb2 as compat_pb
from app.grpc.gen import kvstore_pb2_grpc as compat_grpc
from app.grpc.gen import kvstore_v1_pb2 as pb
from app.grpc.gen import kvstore_v1_pb2_grpc as pb_grpc
from tests.support.api_keys import create_key
from tests.support.grpc_calls import auth, code_of, failure, read, read_until, running_server, trailer
from tests.support.polling import wait_until

pytestmark = pytest.mark.contract

READY = pb.WatchEvent.READY


def is_ready(event: pb.WatchEvent) -> bool:
    return event.type == READY


async def put(kv, md, key: str, value: object) -> int:
    return (await kv.Put(pb.PutRequest(key=key, value=json.dumps(value).encode()), metadata=md)).entry.revision


async def test_a_snapshot_then_live_changes(kv, alice) -> None:
    await put(kv, alice.md, "a", 1)
    await put(kv, alice.md, "b", 2)
    stream = kv.Watch(pb.WatchRequest(snapshot=True), metadata=alice.md)
    events = await read_until(stream, is_ready)
    snapshot = [(e.type, e.entry.key, json.loads(e.entry.value)) for e in events[:-1]]
    assert snapshot == [(pb.WatchEvent.SNAPSHOT, "a", 1), (pb.WatchEvent.SNAPSHOT, "b", 2)]
    assert events[-1].revision == 2 and events[-1].entries == 2 and events[-1].reason == "requested"

    await put(kv, alice.md, "a", 10)
    await kv.Delete(pb.DeleteRequest(key="b"), metadata=alice.md)
    changed, deleted = await read(stream), await read(stream)
    assert (changed.type, changed.revision, changed.entry.key, json.loads(changed.entry.value)) == (
        pb.WatchEvent.PUT,
        3,
        "a",
        10,
    )
    assert changed.entry.version == 2
    assert (deleted.type, deleted.revision, deleted.entry.key) == (pb.WatchEvent.DELETE, 4, "b")
    stream.cancel()


async def test_resuming_from_a_revision_replays_every_change_since_then_goes_live(kv, alice) -> None:
    first = await put(kv, alice.md, "k", 1)
    await put(kv, alice.md, "k", 2)
    third = await put(kv, alice.md, "other", 3)

    stream = kv.Watch(pb.WatchRequest(start_revision=first), metadata=alice.md)
    replayed = [await read(stream), await read(stream)]
    assert [(e.revision, e.entry.key) for e in replayed] == [(first + 1, "k"), (third, "other")]
    stream.cancel()

    fourth = await put(kv, alice.md, "k", 4)  # while nobody watches
    resumed = kv.Watch(pb.WatchRequest(start_revision=third), metadata=alice.md)
    event = await read(resumed)
    assert (event.type, event.revision, json.loads(event.entry.value)) == (pb.WatchEvent.PUT, fourth, 4)
    fifth = await put(kv, alice.md, "k", 5)
    assert (await read(resumed)).revision == fifth
    resumed.cancel()


async def test_a_revision_no_longer_kept_gets_a_snapshot_first(kv, alice) -> None:
    await put(kv, alice.md, "k", 1)
    stream = kv.Watch(pb.WatchRequest(start_revision=1000), metadata=alice.md)
    events = await read_until(stream, is_ready)
    assert events[-1].reason == "trimmed" and [e.entry.key for e in events[:-1]] == ["k"]
    stream.cancel()


async def test_key_and_prefix_filters_and_values_left_out(kv, alice) -> None:
    key_stream = kv.Watch(pb.WatchRequest(key="app:x", snapshot=True), metadata=alice.md)
    prefix_stream = kv.Watch(pb.WatchRequest(prefix="app:", snapshot=True, exclude_values=True), metadata=alice.md)
    await read_until(key_stream, is_ready)
    await read_until(prefix_stream, is_ready)
    await put(kv, alice.md, "zzz", 0)
    await put(kv, alice.md, "app:y", 1)
    revision = await put(kv, alice.md, "app:x", 2)
    assert (await read(key_stream)).revision == revision
    by_prefix = [await read(prefix_stream), await read(prefix_stream)]
    assert [e.entry.key for e in by_prefix] == ["app:y", "app:x"]
    assert all(e.entry.value == b"" for e in by_prefix)
    key_stream.cancel()
    prefix_stream.cancel()


async def test_a_tenant_never_sees_another_tenants_changes(kv, alice, bob) -> None:
    await put(kv, alice.md, "a", 1)
    stream = kv.Watch(pb.WatchRequest(snapshot=True), metadata=bob.md)
    (ready,) = await read_until(stream, is_ready)
    assert ready.entries == 0
    await put(kv, alice.md, "a", 2)
    await put(kv, bob.md, "mine", 1)
    event = await read(stream)
    assert event.entry.key == "mine" and event.revision == 1  # bob's own bucket revision
    stream.cancel()


async def test_refusals_before_the_stream_starts(kv, alice, client) -> None:
    async def refused(request: pb.WatchRequest, md) -> grpc.aio.AioRpcError:
        stream = kv.Watch(request, metadata=md)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(stream)
        return caught.value

    missing = await refused(pb.WatchRequest(bucket="nothere"), alice.md)
    assert missing.code() == grpc.StatusCode.NOT_FOUND and code_of(missing) == "bucket_not_found"
    assert (await refused(pb.WatchRequest(), ())).code() == grpc.StatusCode.UNAUTHENTICATED
    reader = await create_key(client, alice.headers, scopes=["kv:read"])
    denied = await refused(pb.WatchRequest(), auth(reader["key"]))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and code_of(denied) == "insufficient_scope"
    bad = await refused(pb.WatchRequest(start_revision=-1), alice.md)
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_tenants_stream_limit_is_resource_exhausted(settings, client, alice) -> None:
    async with running_server(settings.model_copy(update={"max_watch_streams_per_tenant": 1})) as (_, channel):
        kv = pb_grpc.KVStub(channel)
        first = kv.Watch(pb.WatchRequest(snapshot=True), metadata=alice.md)
        await read_until(first, is_ready)
        second = kv.Watch(pb.WatchRequest(), metadata=alice.md)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(second)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert code_of(caught.value) == "quota_exceeded" and trailer(caught.value, "retry-after")
        first.cancel()


async def test_a_stopping_server_ends_streams_with_where_to_resume(settings, alice) -> None:
    async with running_server(settings) as (server, channel):
        kv = pb_grpc.KVStub(channel)
        revision = await put(kv, alice.md, "k", 1)
        stream = kv.Watch(pb.WatchRequest(snapshot=True), metadata=alice.md)
        await read_until(stream, is_ready)
        stopping = asyncio.create_task(server.stop(grace=5))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(stream)
        await stopping
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert code_of(caught.value) == "shutting_down" and trailer(caught.value, "kvstore-resume-from") == str(revision)


async def test_the_go_store_watch_sends_each_change_of_its_key(channel, alice, grpc_server) -> None:
    compat = compat_grpc.KvStoreStub(channel)
    stream = compat.Watch(compat_pb.WatchRequest(key="nome"), metadata=alice.md)
    # The stream sends nothing until a change; once its lease is held, its start revision is fixed and
    # every later change reaches it.
    await wait_until(lambda: grpc_server.state.watch.hub.leases, what="the watch lease")
    await compat.Put(compat_pb.PutRequest(key="other", value="x"), metadata=alice.md)
    await compat.Put(compat_pb.PutRequest(key="nome", value="Daniel"), metadata=alice.md)
    await compat.Delete(compat_pb.DeleteRequest(key="nome"), metadata=alice.md)
    put_message, delete_message = await read(stream), await read(stream)
    assert json.loads(put_message.message) == {
        "type": "put",
        "key": "nome",
        "value": "Daniel",
        "revision": 2,
        "version": 1,
    }
    assert json.loads(delete_message.message) == {"type": "delete", "key": "nome", "revision": 3, "version": 1}
    stream.cancel()


async def test_a_watch_ends_unauthenticated_when_its_session_ends(kv, alice, client) -> None:
    stream = kv.Watch(pb.WatchRequest(snapshot=True), metadata=alice.md)
    await read_until(stream, is_ready)
    assert (await client.post("/api/v1/auth/logout-all", headers=alice.headers)).status_code == 204
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while True:  # PROGRESS events may come first
            event = await read(stream, timeout=10)
            assert event.type == pb.WatchEvent.PROGRESS
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(caught.value) == "session_ended" and trailer(caught.value, "kvstore-resume-from") == "0"
    refused = await failure(kv.Get(pb.GetRequest(key="k"), metadata=alice.md))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_client_that_stops_reading_is_cut_off_with_where_to_resume(settings, alice) -> None:
    slow = settings.model_copy(update={"watch_queue_size": 1, "watch_slow_client_grace_seconds": 0.5})
    async with running_server(slow) as (_, channel):
        kv = pb_grpc.KVStub(channel)
        stream = kv.Watch(pb.WatchRequest(snapshot=True), metadata=alice.md)
        await read_until(stream, is_ready)
        value = json.dumps("x" * 60_000).encode()
        for _ in range(8):  # 24 MB of events the client does not read: more than the transport buffers
            items = [pb.PutItem(key=f"k{i}", value=value) for i in range(50)]
            await kv.Batch(pb.BatchRequest(put=pb.BatchPut(items=items)), metadata=alice.md)
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            while True:
                received.append((await read(stream, timeout=20)).revision)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and code_of(caught.value) == "slow_consumer"
        resume_from = int(trailer(caught.value, "kvstore-resume-from") or -1)
        assert resume_from <= (received[-1] if received else 0) and resume_from < 400
        resumed = kv.Watch(pb.WatchRequest(start_revision=resume_from), metadata=alice.md)
        assert (await read(resumed)).revision == resume_from + 1  # nothing lost
        resumed.cancel()


async def test_an_idle_stream_sends_progress_with_the_revision_to_resume_after(settings, alice) -> None:
    async with running_server(settings.model_copy(update={"watch_heartbeat_seconds": 0.2})) as (_, channel):
        kv = pb_grpc.KVStub(channel)
        revision = await put(kv, alice.md, "k", 1)
        stream = kv.Watch(pb.WatchRequest(key="other"), metadata=alice.md)
        progress = await read(stream)
        assert (progress.type, progress.revision) == (pb.WatchEvent.PROGRESS, revision)
        later = await put(kv, alice.md, "k", 2)  # a change the key filter skips
        while (await read(stream)).revision != later:
            pass  # PROGRESS moves on to it
        stream.cancel()
