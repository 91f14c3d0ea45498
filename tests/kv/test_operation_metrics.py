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


async def test_a_read_of_a_missing_key_counts_as_key_not_found(client, tenant):
    headers = tenant["headers"]
    hits, misses = operations("get", "ok"), operations("get", "key_not_found")
    batches, exists = operations("batch_get", "ok"), operations("exists", "ok")
    assert (await client.get("/api/v1/kv/nothing-here", headers=headers)).status_code == 404
    assert (await client.post("/api/v1/kv/batch/get", json={"keys": ["a"]}, headers=headers)).status_code == 200
    assert (await client.get("/api/v1/kv/nothing-here/exists", headers=headers)).status_code == 200
    assert operations("get", "key_not_found") == misses + 1
    assert operations("get", "ok") == hits  # neither the miss, the batch nor the exists check is a get
    assert operations("batch_get", "ok") == batches + 1
    assert operations("exists", "ok") == exists + 1
