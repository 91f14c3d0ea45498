"""The audit tasks in Huey's immediate mode, on a single Redis and on a Redis Cluster."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster

import app.platform.jobs
from app.audit.model import encode_event, new_event
from app.audit.tasks import drain_audit_outbox, write_audit_events
from app.config import Settings
from app.platform.keyspace import AUDIT_OUTBOX_TENANTS, KeySchema

pytestmark = pytest.mark.contract

TENANT_A = "aaaaaaaa-0000-0000-0000-000000000001"
TENANT_B = "bbbbbbbb-0000-0000-0000-000000000002"


def stream_events(client: redis.Redis | RedisCluster, tenant_id: str) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange(KeySchema(tenant_id).audit())
    ]


def test_write_audit_events_puts_each_event_in_its_tenants_stream(immediate, sync_redis) -> None:
    first = new_event(action="kv.put_key", status=201, tenant_id=TENANT_A, username="alice", bucket="default", key="k1")
    second = new_event(action="auth.login", status=401, tenant_id=TENANT_B, username="bob", client_ip="10.0.0.1")
    write_audit_events([first, second])

    [a] = stream_events(sync_redis, TENANT_A)
    assert a["eid"] == first["eid"]
    assert (a["action"], a["status"], a["outcome"]) == ("kv.put_key", "201", "success")
    assert (a["username"], a["bucket"], a["key"], a["client_ip"]) == ("alice", "default", "k1", "")
    [b] = stream_events(sync_redis, TENANT_B)
    assert (b["action"], b["outcome"], b["client_ip"]) == ("auth.login", "failure", "10.0.0.1")


def test_a_redelivered_event_is_recorded_once(immediate, sync_redis) -> None:
    events = [new_event(action="kv.put_key", status=200, tenant_id=TENANT_A, key=f"k{i}") for i in range(3)]
    write_audit_events(events)
    write_audit_events([*events[1:], new_event(action="kv.delete_key", status=204, tenant_id=TENANT_A)])
    recorded = stream_events(sync_redis, TENANT_A)
    assert [e["eid"] for e in recorded[:3]] == [e["eid"] for e in events]
    assert len(recorded) == 4


def test_stream_is_capped_near_audit_max_events(immediate, sync_redis, settings: Settings) -> None:
    app.platform.jobs.configure(settings.model_copy(update={"audit_max_events": 100}))
    for start in range(0, 400, 100):
        write_audit_events(
            [
                new_event(action="kv.put_key", status=200, tenant_id=TENANT_A, key=f"k{i}")
                for i in range(start, start + 100)
            ]
        )
    length = sync_redis.xlen(KeySchema(TENANT_A).audit())
    assert 100 <= length < 200  # MAXLEN ~ trims whole stream nodes (100 entries each)
    assert sync_redis.zcard(KeySchema(TENANT_A).audit_ids()) == 100


def test_events_older_than_the_retention_are_trimmed(immediate, sync_redis) -> None:
    stream = KeySchema(TENANT_A).audit()
    for i in range(1, 201):  # two full stream nodes of entries from 1970
        sync_redis.xadd(stream, {"eid": f"old{i}", "action": "kv.put_key"}, id=f"{i}-0")
    write_audit_events([new_event(action="kv.delete_key", status=204, tenant_id=TENANT_A)])
    remaining = stream_events(sync_redis, TENANT_A)
    assert remaining[-1]["action"] == "kv.delete_key"
    assert len(remaining) < 101  # at least the full nodes of old entries are gone


def test_drain_moves_outbox_events_to_the_stream_once(immediate, sync_redis) -> None:
    schema = KeySchema(TENANT_A)
    already_recorded = new_event(action="kv.put_key", status=200, tenant_id=TENANT_A, key="k0")
    write_audit_events([already_recorded])
    parked = [new_event(action="kv.put_key", status=200, tenant_id=TENANT_A, key=f"k{i}") for i in range(1, 4)]
    sync_redis.rpush(schema.audit_outbox(), *(encode_event(e) for e in [already_recorded, *parked]), "not json")
    sync_redis.sadd(AUDIT_OUTBOX_TENANTS, TENANT_A)

    drain_audit_outbox()

    assert [e["key"] for e in stream_events(sync_redis, TENANT_A)] == ["k0", "k1", "k2", "k3"]
    assert sync_redis.llen(schema.audit_outbox()) == 0
    assert not sync_redis.sismember(AUDIT_OUTBOX_TENANTS, TENANT_A)


def test_drain_keeps_a_tenant_whose_outbox_is_not_empty_yet(immediate, sync_redis, monkeypatch) -> None:
    monkeypatch.setattr("app.audit.tasks.OUTBOX_BATCH", 2)
    monkeypatch.setattr("app.audit.tasks.OUTBOX_MAX_ROUNDS", 1)
    schema = KeySchema(TENANT_A)
    parked = [new_event(action="kv.put_key", status=200, tenant_id=TENANT_A, key=f"k{i}") for i in range(5)]
    sync_redis.rpush(schema.audit_outbox(), *(encode_event(e) for e in parked))
    sync_redis.sadd(AUDIT_OUTBOX_TENANTS, TENANT_A)

    drain_audit_outbox()
    assert sync_redis.llen(schema.audit_outbox()) == 3
    assert sync_redis.sismember(AUDIT_OUTBOX_TENANTS, TENANT_A)

    drain_audit_outbox()
    drain_audit_outbox()
    assert [e["key"] for e in stream_events(sync_redis, TENANT_A)] == [f"k{i}" for i in range(5)]
    assert not sync_redis.sismember(AUDIT_OUTBOX_TENANTS, TENANT_A)


def test_events_without_a_tenant_are_not_written(immediate, sync_redis) -> None:
    write_audit_events([new_event(action="auth.login", status=401, username="nobody")])
    assert not list(sync_redis.scan_iter(match="t:*"))
