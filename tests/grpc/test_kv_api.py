"""kvstore.v1.KV through a real grpcio client against the in-process server: every RPC, its
compare-and-swap, validation and auth errors as status codes with the HTTP API's problem code, and
what the HTTP API sees of the same data (one service layer behind both)."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from app.grpc.gen import kvstore_v1_pb2 as pb
from tests.support.api_keys import create_key
from tests.support.grpc_calls import auth, code_of, failure, trailer

pytestmark = pytest.mark.contract


def json_put(key: str, value: object, **fields: object) -> pb.PutRequest:
    return pb.PutRequest(key=key, value=json.dumps(value).encode(), **fields)


async def test_put_creates_then_replaces_with_ttl_and_tags_and_http_reads_the_same_entry(kv, alice, client) -> None:
    created = await kv.Put(
        json_put("user:1", {"name": "Ada"}, ttl_seconds=3600, tags=pb.Tags(values={"t": "x"})), metadata=alice.md
    )
    assert created.created and created.entry.version == 1 and created.entry.revision == 1
    assert json.loads(created.entry.value) == {"name": "Ada"} and dict(created.entry.tags) == {"t": "x"}
    assert 3590 <= created.entry.ttl_seconds <= 3600 and created.entry.HasField("expires_at_ms")

    replaced = await kv.Put(json_put("user:1", {"name": "Grace"}), metadata=alice.md)
    assert not replaced.created and replaced.entry.version == 2
    assert dict(replaced.entry.tags) == {"t": "x"}  # absent tags are kept, as over HTTP
    assert replaced.entry.HasField("ttl_seconds")  # an absent ttl keeps the expiry

    http = await client.get("/api/v1/kv/user:1", headers=alice.headers)
    assert http.status_code == 200 and http.json()["value"] == {"name": "Grace"}
    assert http.json()["metadata"]["version"] == 2 and http.headers["etag"] == '"2"'

    cleared = await kv.Put(json_put("user:1", 1, ttl_seconds=0, tags=pb.Tags()), metadata=alice.md)
    assert not cleared.entry.HasField("ttl_seconds") and dict(cleared.entry.tags) == {}


async def test_binary_values_round_trip_as_bytes_and_show_as_base64_over_http(kv, alice, client) -> None:
    raw = bytes(range(256))
    await kv.Put(pb.PutRequest(key="blob", value=raw, encoding=pb.ENCODING_BINARY), metadata=alice.md)
    got = (await kv.Get(pb.GetRequest(key="blob"), metadata=alice.md)).entry
    assert got.value == raw and got.encoding == pb.ENCODING_BINARY
    http = (await client.get("/api/v1/kv/blob", headers=alice.headers)).json()
    assert http["encoding"] == "base64" and base64.b64decode(http["value"]) == raw


async def test_get_reads_a_past_revision_and_names_a_missing_one(kv, alice) -> None:
    first = (await kv.Put(json_put("k", "one"), metadata=alice.md)).entry
    await kv.Put(json_put("k", "two"), metadata=alice.md)
    past = (await kv.Get(pb.GetRequest(key="k", revision=first.revision), metadata=alice.md)).entry
    assert json.loads(past.value) == "one" and past.version == 1
    current = (await kv.Get(pb.GetRequest(key="k"), metadata=alice.md)).entry
    assert json.loads(current.value) == "two"
    error = await failure(kv.Get(pb.GetRequest(key="k", revision=99), metadata=alice.md))
    assert error.code() == grpc.StatusCode.NOT_FOUND and code_of(error) == "revision_not_found"


async def test_delete_then_the_key_is_not_found(kv, alice) -> None:
    await kv.Put(json_put("gone", 1), metadata=alice.md)
    deleted = await kv.Delete(pb.DeleteRequest(key="gone"), metadata=alice.md)
    assert deleted.revision == 2
    error = await failure(kv.Get(pb.GetRequest(key="gone"), metadata=alice.md))
    assert error.code() == grpc.StatusCode.NOT_FOUND and code_of(error) == "key_not_found"
    again = await failure(kv.Delete(pb.DeleteRequest(key="gone"), metadata=alice.md))
    assert again.code() == grpc.StatusCode.NOT_FOUND and code_of(again) == "key_not_found"


async def test_compare_and_swap_conflicts_are_failed_precondition_with_the_current_version(kv, alice) -> None:
    await kv.Put(json_put("cas", 1), metadata=alice.md)
    await kv.Put(json_put("cas", 2, expected_version=1), metadata=alice.md)

    stale = await failure(kv.Put(json_put("cas", 3, expected_version=1), metadata=alice.md))
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION and code_of(stale) == "version_conflict"
    assert trailer(stale, "kvstore-current-version") == "2"
    status = status_pb2.Status.FromString(
        next(v for k, v in stale.trailing_metadata() if k == "grpc-status-details-bin")
    )
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "version_conflict" and info.domain == "kvstore"
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]

    exists = await failure(kv.Put(json_put("cas", 4, create_only=True), metadata=alice.md))
    assert exists.code() == grpc.StatusCode.FAILED_PRECONDITION
    missing = await failure(kv.Put(json_put("nope", 4, must_exist=True), metadata=alice.md))
    assert missing.code() == grpc.StatusCode.FAILED_PRECONDITION
    by_revision = await failure(kv.Put(json_put("cas", 5, expected_revision=1), metadata=alice.md))
    assert by_revision.code() == grpc.StatusCode.FAILED_PRECONDITION
    delete = await failure(kv.Delete(pb.DeleteRequest(key="cas", expected_version=7), metadata=alice.md))
    assert delete.code() == grpc.StatusCode.FAILED_PRECONDITION and code_of(delete) == "version_conflict"

    assert json.loads((await kv.Get(pb.GetRequest(key="cas"), metadata=alice.md)).entry.value) == 2
    created = await kv.Put(json_put("fresh", 1, expected_revision=0), metadata=alice.md)
    assert created.created
    await kv.Delete(pb.DeleteRequest(key="cas", expected_version=2), metadata=alice.md)


async def test_list_filters_by_prefix_and_tags_and_pages_with_the_cursor(kv, alice) -> None:
    for index in range(7):
        tags = pb.Tags(values={"colour": "red" if index % 2 else "blue"})
        await kv.Put(json_put(f"item:{index}", index, tags=tags), metadata=alice.md)
    await kv.Put(json_put("other", 0), metadata=alice.md)

    seen, cursor = [], ""
    while True:
        page = await kv.List(pb.ListRequest(prefix="item:", limit=3, cursor=cursor), metadata=alice.md)
        assert page.total == 7
        seen += [entry.key for entry in page.entries]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == [f"item:{index}" for index in range(7)]

    red = await kv.List(pb.ListRequest(tags=[pb.TagFilter(name="colour", value="red")]), metadata=alice.md)
    assert [e.key for e in red.entries] == ["item:1", "item:3", "item:5"] and not red.HasField("total")
    everything = await kv.List(pb.ListRequest(), metadata=alice.md)
    assert len(everything.entries) == 8


async def test_batch_writes_all_or_nothing_reads_and_deletes(kv, alice) -> None:
    items = [pb.PutItem(key=f"b{i}", value=str(i).encode()) for i in range(3)]
    written = await kv.Batch(pb.BatchRequest(put=pb.BatchPut(items=items)), metadata=alice.md)
    assert [e.key for e in written.entries] == ["b0", "b1", "b2"]

    bad = [pb.PutItem(key="b9", value=b"1"), pb.PutItem(key="b8", value=b"not json")]
    error = await failure(kv.Batch(pb.BatchRequest(put=pb.BatchPut(items=bad)), metadata=alice.md))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "item 1" in error.details()

    read = await kv.Batch(pb.BatchRequest(get=pb.BatchKeys(keys=["b0", "b9", "b2"])), metadata=alice.md)
    assert [e.key for e in read.entries] == ["b0", "b2"] and list(read.missing) == ["b9"]  # b9 never written

    removed = await kv.Batch(pb.BatchRequest(delete=pb.BatchKeys(keys=["b0", "b1", "zz"])), metadata=alice.md)
    assert list(removed.deleted) == ["b0", "b1"] and list(removed.missing) == ["zz"]
    empty = await failure(kv.Batch(pb.BatchRequest(), metadata=alice.md))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_txn_compares_then_runs_one_branch_atomically(kv, alice, client) -> None:
    flags = (await kv.Put(json_put("flags", {"beta": False}), metadata=alice.md)).entry
    await kv.Put(json_put("old", 1), metadata=alice.md)
    request = pb.TxnRequest(
        compare=[pb.Compare(key="flags", version=flags.version), pb.Compare(key="leader", exists=False)],
        success=[
            pb.TxnOp(put=pb.PutItem(key="flags", value=b'{"beta": true}')),
            pb.TxnOp(delete="old"),
            pb.TxnOp(get="flags"),
        ],
        failure=[pb.TxnOp(get="flags")],
    )
    done = await kv.Txn(request, metadata=alice.md)
    assert done.succeeded
    assert [(entry.key, json.loads(entry.value)) for entry in done.entries] == [
        ("flags", {"beta": True}),
        ("flags", {"beta": True}),
    ]
    assert done.revision == max(entry.revision for entry in done.entries)
    assert (await client.get("/api/v1/kv/old", headers=alice.headers)).status_code == 404

    again = await kv.Txn(request, metadata=alice.md)  # flags moved on: the failure branch, nothing written
    assert not again.succeeded and [json.loads(e.value) for e in again.entries] == [{"beta": True}]
    http = (await client.get("/api/v1/kv/flags", headers=alice.headers)).json()
    assert http["metadata"]["version"] == flags.version + 1

    unauthenticated = await failure(kv.Txn(request))
    assert unauthenticated.code() == grpc.StatusCode.UNAUTHENTICATED
    bad = await failure(kv.Txn(pb.TxnRequest(compare=[pb.Compare(key="flags")]), metadata=alice.md))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "compare[0]" in bad.details()
    bad_op = await failure(kv.Txn(pb.TxnRequest(success=[pb.TxnOp()]), metadata=alice.md))
    assert bad_op.code() == grpc.StatusCode.INVALID_ARGUMENT and "success[0]" in bad_op.details()


@pytest.mark.parametrize(
    "request_",
    [
        pb.PutRequest(key="bad key", value=b"1"),
        pb.PutRequest(key="k", value=b"{not json"),
        pb.PutRequest(key="k", value=b"\xff\xfe"),
        pb.PutRequest(key="k", value=b"NaN"),
        pb.PutRequest(key="k", value=b'"\\ud800"'),
        pb.PutRequest(key="k", value=b"1e999"),
        pb.PutRequest(key="k", value=b"[" * 5000 + b"]" * 5000),
        pb.PutRequest(key="k", value=b"1", ttl_seconds=-1),
        pb.PutRequest(key="k", value=b"1", tags=pb.Tags(values={"bad name": "x"})),
        pb.PutRequest(key="k", value=b"1", tags=pb.Tags(values={"t": ""})),
        pb.PutRequest(key="k", value=b"1", encoding=7),
        pb.PutRequest(bucket="no/such", key="k", value=b"1"),
        pb.PutRequest(key="k" * 300, value=b"1"),
        pb.PutRequest(key="k", value=b"1", expected_version=-1),
    ],
)
async def test_invalid_input_is_invalid_argument(kv, alice, request_) -> None:
    error = await failure(kv.Put(request_, metadata=alice.md))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert code_of(error) == "validation_error"


async def test_a_value_over_the_limit_and_bad_list_parameters_are_invalid_argument(kv, alice, grpc_server) -> None:
    limit = grpc_server.settings.max_value_bytes
    big = await failure(kv.Put(pb.PutRequest(key="k", value=b'"' + b"x" * limit + b'"'), metadata=alice.md))
    assert big.code() == grpc.StatusCode.INVALID_ARGUMENT and code_of(big) == "payload_too_large"
    for request in (
        pb.ListRequest(limit=100_000),
        pb.ListRequest(tags=[pb.TagFilter(name="a b", value="x")]),
        pb.ListRequest(tags=[pb.TagFilter(name="a:b", value="x")]),  # not tag `a` with the value `b:x`
        pb.ListRequest(tags=[pb.TagFilter(name="a", value="")]),
        pb.ListRequest(cursor="x" * 2000),
        pb.GetRequest(key="k", revision=0),
    ):
        call = kv.List if isinstance(request, pb.ListRequest) else kv.Get
        error = await failure(call(request, metadata=alice.md))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request


async def test_a_missing_bucket_is_not_found(kv, alice) -> None:
    error = await failure(kv.Get(pb.GetRequest(bucket="nothere", key="k"), metadata=alice.md))
    assert error.code() == grpc.StatusCode.NOT_FOUND and code_of(error) == "bucket_not_found"


async def test_named_buckets_are_served(kv, alice, client) -> None:
    response = await client.post("/api/v1/kv/buckets", json={"name": "cfg"}, headers=alice.headers)
    assert response.status_code == 201, response.text
    await kv.Put(pb.PutRequest(bucket="cfg", key="k", value=b'"v"'), metadata=alice.md)
    http = await client.get("/api/v1/kv/buckets/cfg/keys/k", headers=alice.headers)
    assert http.json()["value"] == "v"
    error = await failure(kv.Get(pb.GetRequest(key="k"), metadata=alice.md))  # not in `default`
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_calls_without_or_with_a_bad_credential_are_unauthenticated(kv, alice) -> None:
    for metadata in ((), auth("not-a-token"), (("authorization", alice.token),), auth("kvs_bogus")):
        error = await failure(kv.Get(pb.GetRequest(key="k"), metadata=metadata))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
        assert code_of(error) in ("unauthorized", "invalid_token")


async def test_api_key_scopes_buckets_and_prefixes_apply(kv, alice, client) -> None:
    reader = await create_key(client, alice.headers, scopes=["kv:read"])
    denied = await failure(kv.Put(json_put("k", 1), metadata=auth(reader["key"])))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and code_of(denied) == "insufficient_scope"

    await kv.Put(json_put("app:a", 1), metadata=alice.md)
    await kv.Put(json_put("other", 1), metadata=alice.md)
    narrow = await create_key(client, alice.headers, scopes=["kv:read", "kv:write"], key_prefix="app:")
    md = auth(narrow["key"])
    await kv.Put(json_put("app:b", 2), metadata=md)
    outside = await failure(kv.Get(pb.GetRequest(key="other"), metadata=md))
    assert outside.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await kv.List(pb.ListRequest(), metadata=md)
    assert [e.key for e in listed.entries] == ["app:a", "app:b"]
    batch = pb.BatchRequest(delete=pb.BatchKeys(keys=["app:a", "other"]))
    assert (await failure(kv.Batch(batch, metadata=md))).code() == grpc.StatusCode.PERMISSION_DENIED

    bucketed = await create_key(client, alice.headers, scopes=["kv:read"], buckets=["cfg"])
    wrong_bucket = await failure(kv.Get(pb.GetRequest(key="app:a"), metadata=auth(bucketed["key"])))
    assert wrong_bucket.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_tenants_are_isolated(kv, compat, alice, bob) -> None:
    from app.grpc.gen import kvstore_pb2 as compat_pb

    await kv.Put(json_put("secret", "alice's"), metadata=alice.md)
    error = await failure(kv.Get(pb.GetRequest(key="secret"), metadata=bob.md))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert list((await kv.List(pb.ListRequest(), metadata=bob.md)).entries) == []
    assert dict((await compat.GetAll(compat_pb.GetAllRequest(), metadata=bob.md)).pairs) == {}
    read = await kv.Batch(pb.BatchRequest(get=pb.BatchKeys(keys=["secret"])), metadata=bob.md)
    assert list(read.missing) == ["secret"]
    await kv.Put(json_put("secret", "bob's"), metadata=bob.md)  # his own key of the same name
    assert json.loads((await kv.Get(pb.GetRequest(key="secret"), metadata=alice.md)).entry.value) == "alice's"


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("/kvstore.v1.KV/Get", b"\x12\x02\xff\xfe"),  # key: not UTF-8
        ("/kvstore.v1.KV/Put", b"\xff\xff\xff"),  # not a message at all
        ("/kvstore.v1.KV/Put", b"\x32\x06\x0a\x04\x0a\x02\xc3\x28"),  # a tag name that is not UTF-8
        ("/kvstore.KvStore/Put", b"\x0a\x01k\x12\x01\x80"),
        ("/kvstore.KvStore/GetAll", b"\x0a"),  # truncated
    ],
)
async def test_a_request_that_is_no_valid_message_is_invalid_argument(channel, alice, method, raw) -> None:
    call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    error = await failure(call(raw, metadata=alice.md))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and code_of(error) == "validation_error"


async def test_a_watch_request_that_is_no_valid_message_is_invalid_argument(channel, alice) -> None:
    call = channel.unary_stream(
        "/kvstore.v1.KV/Watch", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    stream = call(b"\x12\x01\xff", metadata=alice.md)  # key: not UTF-8
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
