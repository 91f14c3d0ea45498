"""The object store as the tests use it: a bucket with 64 KiB chunks, deterministic payloads,
uploads, and a look at what is stored (chunk keys, garbage) through a sync client of the data Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx

from app.config import Settings
from app.objects.store import SyncObjectStore
from app.objects.tasks import GcResult, collect_garbage
from app.platform.keyspace import KeySchema
from app.platform.redis import SyncDataRedis
from app.platform.scripts import SyncScripts

CHUNK = 65_536
BUCKET = "files"
API = "/api/v1/objects"
DAY_MS = 86_400_000


def object_url(name: str, bucket: str = BUCKET) -> str:
    return f"{API}/buckets/{bucket}/objects/{name}"


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ from chunk to chunk (a misplaced chunk shows)."""
    block = bytes((i * 7 + seed) % 251 for i in range(4093))
    return (block * (size // len(block) + 1))[:size]


async def put_object(
    client: httpx.AsyncClient, tenant: dict, name: str, data: bytes, headers: dict[str, str] | None = None, **kw
) -> httpx.Response:
    return await client.put(object_url(name, **kw), content=data, headers={**tenant["headers"], **(headers or {})})


async def put_ok(client: httpx.AsyncClient, tenant: dict, name: str, data: bytes, **kw) -> dict:
    response = await put_object(client, tenant, name, data, **kw)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def stream_body(data: bytes, piece: int = 10_000) -> AsyncIterator[bytes]:
    """A request body without Content-Length (chunked transfer), sent in small pieces."""
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


class Store:
    """What the data Redis holds for one tenant's objects (tests may SCAN; the service never does)."""

    def __init__(self, client: SyncDataRedis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.scripts = SyncScripts(client)
        self.objects = SyncObjectStore(client, self.scripts, settings)

    def keys(self, tenant_id: str, kind: str) -> list[bytes]:
        return list(self.client.scan_iter(match=f"{KeySchema(tenant_id).prefix}{kind}:*", count=1000))

    def chunk_keys(self, tenant_id: str) -> list[bytes]:
        return self.keys(tenant_id, "ch")

    def garbage(self, tenant_id: str) -> list[bytes]:
        return self.client.zrange(KeySchema(tenant_id).garbage(), 0, -1)

    def meta(self, tenant_id: str, bucket: str, name: str) -> dict[bytes, bytes]:
        schema = KeySchema(tenant_id)
        bucket_id = self.client.hget(schema.object_bucket(bucket), "id").decode()
        return self.client.hgetall(schema.object_meta(bucket_id, name))

    def collect(self, ahead_ms: int = DAY_MS) -> GcResult:
        """A garbage pass with the clock ``ahead_ms`` in the future (past every grace and deadline)."""
        return collect_garbage(self.objects, now_ms=time.time_ns() // 1_000_000 + ahead_ms)

    def live_chunks(self, tenant_id: str) -> int:
        """Chunks the tenant's current objects reference (their meta hashes, read without the API)."""
        total = 0
        for key in self.keys(tenant_id, "o"):
            if b":m:" in key:
                total += int(self.client.hget(key, "chunks"))
        return total
