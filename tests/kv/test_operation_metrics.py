"""KV calls are counted in kvstore_operations_total{operation,status}."""

from __future__ import annotations

from prometheus_client import REGISTRY


def operations(operation: str, status: str) -> float:
    return REGISTRY.get_sample_value("kvstore_operations_total", {"operation": operation, "status": status}) or 0.0


async def test_kv_operations_are_counted_with_their_outcome(client, tenant):
    headers = tenant["headers"]
    puts, gets = operations("put", "ok"), operations("get", "ok")
    conflicts = operations("put", "version_conflict")

    assert (await client.put("/api/v1/kv/m", json={"value": 1}, headers=headers)).status_code == 201
    assert (await client.get("/api/v1/kv/m", headers=headers)).status_code == 200
    stale = await client.put("/api/v1/kv/m", json={"value": 2}, headers={**headers, "If-Match": '"7"'})
    assert stale.status_code == 412

    assert operations("put", "ok") == puts + 1
    assert operations("get", "ok") == gets + 1
    assert operations("put", "version_conflict") == conflicts + 1
