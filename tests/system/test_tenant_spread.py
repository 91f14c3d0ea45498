"""On a Redis Cluster every tenant lives in one slot and the tenants spread over all masters."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest
import redis

from app.platform.embedded_redis import LocalRedisCluster
from tests.support.tenants import register

pytestmark = pytest.mark.cluster_only

TENANTS = 200


async def test_tenants_spread_over_every_master_and_each_stays_on_one(client, request):
    cluster: LocalRedisCluster = request.getfixturevalue("cluster_server")
    semaphore = asyncio.Semaphore(20)

    async def tenant_with_data(i: int) -> str:
        async with semaphore:
            body = await register(client, f"spread{i:03d}")
            headers = {"Authorization": f"Bearer {body['access_token']}"}
            response = await client.put(f"/api/v1/kv/k{i}", json={"value": i, "ttl": 3600}, headers=headers)
            assert response.status_code == 201
            return body["tenant_id"]

    tenant_ids = await asyncio.gather(*(tenant_with_data(i) for i in range(TENANTS)))

    nodes_of_tenant: dict[str, set[int]] = defaultdict(set)
    keys_per_node: Counter[int] = Counter()
    for node_index, node in enumerate(cluster.nodes):
        client_node = redis.Redis(port=node.port)
        for raw in client_node.scan_iter(match="t:{*", count=1000):
            tenant_id = raw.decode().split("{", 1)[1].split("}", 1)[0]
            nodes_of_tenant[tenant_id].add(node_index)
            keys_per_node[node_index] += 1
        client_node.close()

    assert set(nodes_of_tenant) == set(tenant_ids)
    # One slot per tenant: all of a tenant's keys on one master ...
    assert all(len(nodes) == 1 for nodes in nodes_of_tenant.values())
    # ... and the tenants spread over every master.
    tenants_per_node = Counter(next(iter(nodes)) for nodes in nodes_of_tenant.values())
    assert set(tenants_per_node) == {0, 1, 2}
    assert min(tenants_per_node.values()) >= TENANTS // 6
