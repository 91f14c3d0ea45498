"""The Go gRPC KV store (../shared/seeds/001_f8f272a2b279bf42.txt): its clients keep working against
kvstore's `kvstore.KvStore` service, on the bucket `default` of the caller's tenant.

The probe replays the calls its README documents with a client generated from its own proto
definitions (tests/support/go_grpc_client.py, in a process of its own); the other tests pin what its
README leaves open (Delete of a missing key, GetAll's limits, values written through HTTP)."""

from __future__ import annotations

import asyncio
import json
import sys

import grpc
import pytest

from app.grpc.compat import GETALL_MAX_KEYS
from app.grpc.gen import kvstore_pb2 as pb
from tests.support.grpc_calls import code_of, failure
from tests.support.paths import REPO

pytestmark = pytest.mark.contract


@pytest.mark.subprocess
async def test_the_go_stores_documented_calls_with_a_client_generated_from_its_proto(
    grpc_server, alice, client, tmp_path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.go_grpc_client",
        str(tmp_path),
        f"127.0.0.1:{grpc_server.port}",
        alice.token,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, stderr.decode()
    transcript = json.loads(stdout)

    assert transcript["put test"] is True
    assert transcript["get test"] == ["test", "hello"]
    assert transcript["get nome"] == "Daniel"
    assert transcript["delete nome"] is True and transcript["delete again"] is False
    assert transcript["get deleted"] == "NOT_FOUND"
    assert transcript["get user:1"] == '{"name":"João","email":"joao@email.com"}'
    assert transcript["all"] == {
        "test": "hello",
        "user:1": '{"name":"João","email":"joao@email.com"}',
        **{f"populate:{i}": f"value {i}" for i in range(5)},
    }
    attempt = transcript["watch"]["attempt"]
    assert attempt is not None
    message = transcript["watch"]["message"]
    assert message["type"] == "put" and message["key"] == "user:1" and message["value"].startswith("v")
    assert transcript["no credential"] == "UNAUTHENTICATED"

    # The same keys through the HTTP API: strings stored as JSON strings in the bucket `default`.
    http = await client.get("/api/v1/kv/test", headers=alice.headers)
    assert http.status_code == 200 and http.json()["value"] == "hello"


async def test_put_get_delete_and_get_all(compat, alice) -> None:
    assert (await compat.Put(pb.PutRequest(key="a", value="1"), metadata=alice.md)).success
    assert (await compat.Get(pb.GetRequest(key="a"), metadata=alice.md)).value == "1"
    assert dict((await compat.GetAll(pb.GetAllRequest(), metadata=alice.md)).pairs) == {"a": "1"}
    assert (await compat.Delete(pb.DeleteRequest(key="a"), metadata=alice.md)).success
    assert not (await compat.Delete(pb.DeleteRequest(key="a"), metadata=alice.md)).success
    error = await failure(compat.Get(pb.GetRequest(key="a"), metadata=alice.md))
    assert error.code() == grpc.StatusCode.NOT_FOUND and code_of(error) == "key_not_found"


async def test_values_written_through_http_read_as_text(compat, alice, client) -> None:
    await client.put("/api/v1/kv/doc", json={"value": {"n": [1, 2]}}, headers=alice.headers)
    await client.put("/api/v1/kv/bin", json={"value": "aGk=", "encoding": "base64"}, headers=alice.headers)
    assert (await compat.Get(pb.GetRequest(key="doc"), metadata=alice.md)).value == '{"n":[1,2]}'
    assert (await compat.Get(pb.GetRequest(key="bin"), metadata=alice.md)).value == "aGk="


async def test_bad_keys_are_invalid_argument_and_quotas_resource_exhausted(compat, alice, grpc_server) -> None:
    error = await failure(compat.Put(pb.PutRequest(key="no spaces", value="x"), metadata=alice.md))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and code_of(error) == "validation_error"
    await grpc_server.state.usage_service.set_limits(alice.id, {"max_keys": 1})
    await compat.Put(pb.PutRequest(key="one", value="x"), metadata=alice.md)
    full = await failure(compat.Put(pb.PutRequest(key="two", value="x"), metadata=alice.md))
    assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and code_of(full) == "quota_exceeded"


async def test_get_all_refuses_a_bucket_larger_than_one_answer(compat, kv, alice, monkeypatch) -> None:
    from app.grpc import compat as compat_module
    from app.grpc.gen import kvstore_v1_pb2 as v1

    monkeypatch.setattr(compat_module, "GETALL_MAX_KEYS", 3)
    assert GETALL_MAX_KEYS == 10_000
    items = [v1.PutItem(key=f"k{i}", value=b"1") for i in range(4)]
    await kv.Batch(v1.BatchRequest(put=v1.BatchPut(items=items)), metadata=alice.md)
    error = await failure(compat.GetAll(pb.GetAllRequest(), metadata=alice.md))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and code_of(error) == "response_too_large"


async def test_get_all_refuses_more_bytes_than_one_answer_holds(compat, alice, monkeypatch) -> None:
    from app.grpc import compat as compat_module

    monkeypatch.setattr(compat_module, "GETALL_MAX_BYTES", 100)
    assert compat_module.GETALL_MAX_BYTES < 4 * 1024 * 1024  # the default, below a client's receive limit
    await compat.Put(pb.PutRequest(key="small", value="x"), metadata=alice.md)
    assert dict((await compat.GetAll(pb.GetAllRequest(), metadata=alice.md)).pairs) == {"small": "x"}
    await compat.Put(pb.PutRequest(key="big", value="y" * 200), metadata=alice.md)
    error = await failure(compat.GetAll(pb.GetAllRequest(), metadata=alice.md))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and code_of(error) == "response_too_large"
