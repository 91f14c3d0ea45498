"""Overwrites during reads, interrupted uploads, integrity checks, garbage collection and churn."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from app.objects.model import new_upload_id
from app.objects.store import OBJECT_CHUNK_WRITE, OBJECT_PUT_BEGIN, SyncObjectStore
from app.objects.tasks import compact_object, visit_tenant
from app.platform import keyspace as keys
from app.platform.keyspace import KeySchema
from app.platform.scripts import ScriptError
from tests.support.objects import API, BUCKET, CHUNK, object_url, payload, put_ok
from tests.support.tenants import register

pytestmark = pytest.mark.contract


async def test_a_reader_of_the_old_version_reads_it_to_the_end(app, client, tenant, bucket) -> None:
    old, new = payload(4 * CHUNK, seed=1), payload(3 * CHUNK, seed=2)
    await put_ok(client, tenant, "live", old)
    objects = app.state.object_service
    tid = tenant["tenant_id"]
    reader_obj = await objects.get_object(tid, bucket, "live")
    reader = objects.iter_content(tid, reader_obj, 0, len(old) - 1)
    received = [await anext(reader)]
    await put_ok(client, tenant, "live", new)  # overwrite while the first reader is mid-way
    received += [piece async for piece in reader]
    assert b"".join(received) == old
    assert (await client.get(object_url("live"), headers=tenant["headers"])).content == new


async def raw_put(app, path: str, headers: dict[str, str], messages: list[dict]) -> list[dict]:
    """Call the ASGI app as a server would, with the receive messages given (a disconnect, say)."""
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "PUT", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
    }  # fmt: skip
    await app(scope, receive, send)
    return sent


async def test_a_client_that_disconnects_mid_body_leaves_nothing(app, client, tenant, bucket, store) -> None:
    body = payload(3 * CHUNK)
    messages = [{"type": "http.request", "body": body, "more_body": True}, {"type": "http.disconnect"}]
    sent = await raw_put(app, object_url("partial"), tenant["headers"], messages)
    assert sent[0]["status"] == 400  # nobody reads it; what matters is no 500 and nothing stored
    assert (await client.get(object_url("partial"), headers=tenant["headers"])).status_code == 404
    tid = tenant["tenant_id"]
    assert store.chunk_keys(tid) == []
    assert store.garbage(tid) == []
    assert store.keys(tid, "up") == []


async def test_a_crashed_upload_is_collected_after_its_idle_deadline(client, tenant, bucket, store, settings) -> None:
    """An API process that dies mid-upload cannot clean up: its pending id is found by the worker."""
    tid = tenant["tenant_id"]
    schema = KeySchema(tid)
    upload_id = new_upload_id()
    scripts = store.scripts
    idle_ms = settings.object_upload_idle_seconds * 1000
    _, _, _, deadline = scripts.call(
        OBJECT_PUT_BEGIN,
        keys=[schema.object_bucket(bucket)],
        args=[schema.prefix, bucket, "crash", upload_id, idle_ms, "", ""],
    )
    store.client.zadd(keys.OBJECT_GC_SCHEDULE, {tid: int(deadline)}, lt=True)  # as the API does
    for index in range(3):
        args = [schema.prefix, upload_id, index, idle_ms, payload(CHUNK), ""]
        assert scripts.call(OBJECT_CHUNK_WRITE, keys=[schema.upload(upload_id)], args=args) == []
    # ... and the process is gone before committing.
    store.collect(ahead_ms=idle_ms - 60_000)
    assert len(store.chunk_keys(tid)) == 3  # still within its deadline: it may yet commit
    store.collect(ahead_ms=idle_ms + 60_000)
    assert store.chunk_keys(tid) == []
    assert store.keys(tid, "up") == []
    # A writer that wakes up after the collector took its upload is refused, and stores nothing.
    args = [schema.prefix, upload_id, 3, idle_ms, b"late", ""]
    with pytest.raises(ScriptError, match="upload_expired"):
        scripts.call(OBJECT_CHUNK_WRITE, keys=[schema.upload(upload_id)], args=args)
    assert store.chunk_keys(tid) == []
    assert (await client.get(object_url("crash"), headers=tenant["headers"])).status_code == 404


async def test_verify_detects_a_corrupted_or_missing_chunk(client, tenant, bucket, store) -> None:
    data = payload(3 * CHUNK + 10)
    await put_ok(client, tenant, "v", data)
    url = object_url("v") + "/verify"
    good = (await client.get(url, headers=tenant["headers"])).json()
    sha = hashlib.sha256(data).hexdigest()
    del good["hashed_at"]
    assert good == {"name": "v", "valid": True, "expected": sha, "actual": sha, "size": len(data), "missing_chunks": 0}

    segs = store.meta(tenant["tenant_id"], bucket, "v")[b"segs"].decode()
    upload_id = segs.split(":")[0]
    second = KeySchema(tenant["tenant_id"]).chunk(upload_id, 1)
    store.client.setrange(second, 100, b"\x00\x01\x02")  # flip a few bytes, same length
    # The remembered verification is past its re-verify interval (a changed length shows at once).
    bucket_id = store.client.hget(KeySchema(tenant["tenant_id"]).object_bucket(bucket), "id").decode()
    store.client.hdel(KeySchema(tenant["tenant_id"]).object_meta(bucket_id, "v"), "verified")
    bad = (await client.get(url, headers=tenant["headers"])).json()
    assert bad["valid"] is False
    assert bad["expected"] == sha
    assert bad["actual"] not in (None, sha)

    store.client.delete(second)
    gone = (await client.get(url, headers=tenant["headers"])).json()
    assert gone["valid"] is False
    assert gone["actual"] is None
    assert gone["missing_chunks"] == 1


async def test_overwritten_versions_are_kept_for_the_grace_period(client, tenant, bucket, store, settings) -> None:
    tid = tenant["tenant_id"]
    await put_ok(client, tenant, "g", payload(2 * CHUNK))
    await put_ok(client, tenant, "g", payload(CHUNK))
    grace_ms = settings.object_gc_grace_seconds * 1000
    store.collect(ahead_ms=grace_ms - 30_000)
    assert len(store.chunk_keys(tid)) == 3
    result = store.collect(ahead_ms=grace_ms + 30_000)
    assert (result.collected_ids, result.deleted_chunks) == (1, 2)
    assert len(store.chunk_keys(tid)) == 1
    assert store.garbage(tid) == []
    assert store.client.zscore(keys.OBJECT_GC_SCHEDULE, tid) is None


async def test_the_pass_visits_only_tenants_with_work_due(client, tenant, bucket, store, settings) -> None:
    await put_ok(client, tenant, "only-created", payload(10))  # no garbage, only a stale upload hint
    bob = await register(client, "bob")
    bob_headers = {"Authorization": f"Bearer {bob['access_token']}"}
    await client.post(f"{API}/buckets", json={"name": BUCKET, "chunk_size": CHUNK}, headers=bob_headers)
    await client.put(object_url("x"), content=b"1", headers=bob_headers)
    await client.put(object_url("x"), content=b"2", headers=bob_headers)  # garbage for bob
    alice_due = store.client.zscore(keys.OBJECT_GC_SCHEDULE, tenant["tenant_id"])
    bob_due = store.client.zscore(keys.OBJECT_GC_SCHEDULE, bob["tenant_id"])
    assert alice_due - bob_due > (settings.object_upload_idle_seconds - settings.object_gc_grace_seconds - 60) * 1000
    result = store.collect(ahead_ms=settings.object_gc_grace_seconds * 1000 + 30_000)
    assert (result.tenants, result.collected_ids) == (1, 1)  # bob only
    assert store.client.zrange(keys.OBJECT_GC_SCHEDULE, 0, -1) == [tenant["tenant_id"].encode()]
    result = store.collect()  # alice's hint comes due: a visit that finds nothing and drops her
    assert (result.tenants, result.collected_ids) == (1, 0)
    assert store.client.zcard(keys.OBJECT_GC_SCHEDULE) == 0


async def test_compaction_discards_its_copy_when_the_object_changes_meanwhile(
    client, tenant, bucket, store, settings
) -> None:
    tid = tenant["tenant_id"]
    schema = KeySchema(tid)
    url = object_url("m")
    upload_id = (await client.post(url + "/uploads", headers=tenant["headers"])).json()["upload_id"]
    for number in (1, 2):
        await client.put(
            f"{url}/uploads/{upload_id}/parts/{number}", content=payload(CHUNK + 1), headers=tenant["headers"]
        )
    await client.post(f"{url}/uploads/{upload_id}/complete", json={"parts": [1, 2]}, headers=tenant["headers"])

    class OverwriteOnFirstRead:
        """The sync client, except that a new version lands right after the copy's first read."""

        def __init__(self, client) -> None:
            self._client, self._done = client, False

        def __getattr__(self, name):
            return getattr(self._client, name)

        def get(self, key):
            value = self._client.get(key)
            if not self._done:
                self._done = True
                bucket_id = self._client.hget(schema.object_bucket(bucket), "id").decode()
                self._client.hset(schema.object_meta(bucket_id, "m"), "segs", "feedface:1:1")
            return value

    bucket_id = store.client.hget(schema.object_bucket(bucket), "id").decode()
    racing = SyncObjectStore(OverwriteOnFirstRead(store.client), store.scripts, settings)
    outcome = compact_object(racing, tid, bucket_id, "m")
    assert outcome == "stale"
    assert store.meta(tid, bucket, "m")[b"segs"] == b"feedface:1:1"  # not swapped
    visit_tenant(store.objects, tid, now_ms=None)  # the copy was due at once
    assert store.keys(tid, "up") == []
    assert len(store.chunk_keys(tid)) == 4  # the parts (still named by nothing but this test's hack)


async def test_churn_leaves_exactly_the_chunks_live_objects_need(app, client, tenant, bucket, store) -> None:
    """Uploads, overwrites, deletes, multipart completes and aborts, interrupted bodies; after a
    collection the chunk keys are exactly those of the live objects, and no bookkeeping is left."""
    rng = random.Random(7)
    headers = tenant["headers"]
    tid = tenant["tenant_id"]
    names = [f"n{i}" for i in range(6)]
    expected: dict[str, bytes] = {}
    for step in range(60):
        name = rng.choice(names)
        action = rng.random()
        if action < 0.45:
            data = payload(rng.randint(0, 3 * CHUNK + 10), seed=step)
            await put_ok(client, tenant, name, data)
            expected[name] = data
        elif action < 0.6:
            response = await client.delete(object_url(name), headers=headers)
            assert response.status_code == (200 if name in expected else 404)
            expected.pop(name, None)
        elif action < 0.8:
            upload_id = (await client.post(object_url(name) + "/uploads", headers=headers)).json()["upload_id"]
            parts = [payload(rng.randint(1, 2 * CHUNK), seed=step * 10 + i) for i in range(rng.randint(1, 3))]
            for number, part in enumerate(parts, 1):
                url = f"{object_url(name)}/uploads/{upload_id}/parts/{number}"
                await client.put(url, content=part, headers=headers)
            if rng.random() < 0.7:
                url = f"{object_url(name)}/uploads/{upload_id}/complete"
                response = await client.post(url, json={"parts": list(range(1, len(parts) + 1))}, headers=headers)
                assert response.status_code in (200, 201)
                expected[name] = b"".join(parts)
            else:
                await client.delete(f"{object_url(name)}/uploads/{upload_id}", headers=headers)
        else:  # a client that goes away mid-body
            messages = [{"type": "http.request", "body": payload(CHUNK + 5), "more_body": True}]
            sent = await raw_put(app, object_url(name), headers, [*messages, {"type": "http.disconnect"}])
            assert sent[0]["status"] == 400
        if step % 20 == 19:
            store.collect(ahead_ms=0)  # passes during the churn compact and free what is due
    store.collect()
    store.collect()  # compaction garbage of the first pass is due in the second
    for name, data in expected.items():
        assert (await client.get(object_url(name), headers=headers)).content == data
    listed = (await client.get(f"{API}/buckets/{bucket}/objects", headers=headers)).json()["items"]
    assert [i["name"] for i in listed] == sorted(expected)
    assert len(store.chunk_keys(tid)) == store.live_chunks(tid) == sum(-(-len(d) // CHUNK) for d in expected.values())
    assert store.garbage(tid) == []
    assert store.keys(tid, "up") == []
    usage = store.client.hgetall(KeySchema(tid).usage())
    assert int(usage.get(b"objects", 0)) == len(expected)
    assert int(usage.get(b"object_bytes", 0)) == sum(len(d) for d in expected.values())
