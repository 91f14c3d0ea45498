"""The gRPC server around the RPCs: health checking, reflection, metrics by method and code, the
audit trail of writes, quotas and the tenant rate limit as RESOURCE_EXHAUSTED."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from app.grpc.gen import kvstore_pb2 as compat_pb
from app.grpc.gen import kvstore_v1_pb2 as pb
from app.grpc.gen import kvstore_v1_pb2_grpc as pb_grpc
from tests.support.grpc_calls import code_of, failure, running_server, trailer
from tests.support.polling import wait_until

pytestmark = pytest.mark.contract


async def test_health_serving_for_the_server_and_both_services(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "kvstore.v1.KV", "kvstore.KvStore"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    unknown = await failure(health.Check(health_pb2.HealthCheckRequest(service="nope")))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_the_services_are_not_serving_while_redis_is_down(grpc_server, channel, monkeypatch) -> None:
    async def down() -> None:
        raise ConnectionError("down")

    monkeypatch.setattr(grpc_server.state.data_redis, "ping", down)
    await grpc_server._check_storage()
    health = health_pb2_grpc.HealthStub(channel)
    ready = await health.Check(health_pb2.HealthCheckRequest(service="kvstore.v1.KV"))
    alive = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert alive.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_and_describes_the_services(channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="kvstore.v1.KV"),
    ]
    answers = [answer async for answer in stub.ServerReflectionInfo(iter(requests))]
    services = {service.name for service in answers[0].list_services_response.service}
    assert {"kvstore.v1.KV", "kvstore.KvStore", "grpc.health.v1.Health"} <= services
    assert answers[1].file_descriptor_response.file_descriptor_proto


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_calls_by_method_and_code(kv, alice) -> None:
    labels = {"grpc_service": "kvstore.v1.KV", "grpc_type": "unary"}
    ok_before = sample("grpc_server_handled_total", grpc_method="Get", grpc_code="OK", **labels)
    missing_before = sample("grpc_server_handled_total", grpc_method="Get", grpc_code="NOT_FOUND", **labels)
    await kv.Put(pb.PutRequest(key="k", value=b"1"), metadata=alice.md)
    await kv.Get(pb.GetRequest(key="k"), metadata=alice.md)
    await failure(kv.Get(pb.GetRequest(key="zz"), metadata=alice.md))
    await failure(kv.Get(pb.GetRequest(key="zz"), metadata=alice.md))
    assert sample("grpc_server_handled_total", grpc_method="Get", grpc_code="OK", **labels) == ok_before + 1
    assert sample("grpc_server_handled_total", grpc_method="Get", grpc_code="NOT_FOUND", **labels) == missing_before + 2
    assert sample("grpc_server_handling_seconds_count", grpc_method="Get", **labels) >= 3


async def test_writes_are_audited_like_http_writes(immediate, grpc_server, kv, compat, alice, client) -> None:
    await kv.Put(pb.PutRequest(key="colour", value=b'"red"'), metadata=alice.md)
    await kv.Get(pb.GetRequest(key="colour"), metadata=alice.md)  # a read: no event
    await failure(kv.Delete(pb.DeleteRequest(key="missing"), metadata=alice.md))
    await compat.Put(compat_pb.PutRequest(key="shape", value="round"), metadata=alice.md)
    await kv.Batch(pb.BatchRequest(get=pb.BatchKeys(keys=["colour"])), metadata=alice.md)  # a read
    await kv.Batch(pb.BatchRequest(delete=pb.BatchKeys(keys=["shape"])), metadata=alice.md)

    async def trail() -> list[tuple]:
        await grpc_server.state.audit.flush()
        response = await client.get("/api/v1/audit", headers=alice.headers)
        found = response.json()["items"]
        assert {e["client_ip"] for e in found if e["action"].startswith("kv.")} <= {"127.0.0.1"}
        items = [(e["action"], e["key"], e["bucket"], e["status"]) for e in found]
        return items if len(items) >= 5 else []

    # Delivery goes through the worker's task (inline here) in batches: the order of the trail is the
    # order the batches landed in.
    events = await wait_until(trail, timeout=10, what="the audit events")
    assert sorted(events) == sorted(
        [
            ("auth.register", None, None, 201),
            ("kv.batch_delete", None, "default", 200),
            ("kv.put_key", "shape", "default", 201),
            ("kv.delete_key", "missing", "default", 404),
            ("kv.put_key", "colour", "default", 201),
        ]
    )


async def test_key_and_byte_quotas_are_resource_exhausted(kv, alice, grpc_server) -> None:
    await grpc_server.state.usage_service.set_limits(alice.id, {"max_keys": 2})
    await kv.Put(pb.PutRequest(key="a", value=b"1"), metadata=alice.md)
    await kv.Put(pb.PutRequest(key="b", value=b"1"), metadata=alice.md)
    error = await failure(kv.Put(pb.PutRequest(key="c", value=b"1"), metadata=alice.md))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and code_of(error) == "quota_exceeded"
    batch = pb.BatchRequest(put=pb.BatchPut(items=[pb.PutItem(key="d", value=b"1")]))
    assert (await failure(kv.Batch(batch, metadata=alice.md))).code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    await grpc_server.state.usage_service.set_limits(alice.id, {"max_keys": None, "max_kv_bytes": 40})
    big = pb.PutRequest(key="a", value=json.dumps("x" * 100).encode())
    too_big = await failure(kv.Put(big, metadata=alice.md))
    assert too_big.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and code_of(too_big) == "quota_exceeded"
    assert (await kv.Get(pb.GetRequest(key="a"), metadata=alice.md)).entry.value == b"1"


async def test_the_tenant_rate_limit_is_resource_exhausted_with_retry_after(settings, alice, bob) -> None:
    limited = settings.model_copy(update={"rate_limit_per_second": 0.01, "rate_limit_burst": 3})
    async with running_server(limited) as (_, channel):
        kv = pb_grpc.KVStub(channel)
        for _ in range(3):
            await failure(kv.Get(pb.GetRequest(key="k"), metadata=alice.md))  # NOT_FOUND, but counted
        error = await failure(kv.Get(pb.GetRequest(key="k"), metadata=alice.md))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and code_of(error) == "too_many_requests"
        assert int(trailer(error, "retry-after") or 0) >= 1
        other = await failure(kv.Get(pb.GetRequest(key="k"), metadata=bob.md))
        assert other.code() == grpc.StatusCode.NOT_FOUND  # another tenant's budget


async def test_every_call_carries_a_request_id(kv, alice) -> None:
    error = await failure(kv.Get(pb.GetRequest(key="zz"), metadata=alice.md))
    assert len(trailer(error, "x-request-id") or "") == 32
    call = kv.Put(pb.PutRequest(key="zz", value=b"1"), metadata=alice.md)
    await call
    ids = [value for key, value in await call.trailing_metadata() if key == "x-request-id"]
    assert len(ids) == 1 and len(ids[0]) == 32 and ids[0] != trailer(error, "x-request-id")


async def test_a_message_over_max_request_body_bytes_is_refused(settings, alice) -> None:
    small = settings.model_copy(update={"max_request_body_bytes": 64 * 1024})
    async with running_server(small) as (_, channel):
        kv = pb_grpc.KVStub(channel)
        error = await failure(kv.Put(pb.PutRequest(key="k", value=b'"' + b"x" * 70_000 + b'"'), metadata=alice.md))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await kv.Put(pb.PutRequest(key="k", value=b'"' + b"x" * 60_000 + b'"'), metadata=alice.md)


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:10.0.0.1:5000", "10.0.0.1"),
        ("ipv6:%5B::1%5D:5000", "::1"),
        ("ipv6:[2001:db8::7]:443", "2001:db8::7"),
        ("unix:/tmp/socket", None),
        ("", None),
    ],
)
def test_the_client_address_of_a_peer_string(peer: str, address: str | None) -> None:
    from app.grpc.calls import peer_address

    assert peer_address(peer) == address
