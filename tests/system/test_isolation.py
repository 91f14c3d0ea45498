"""Tenant isolation, property-based: Hypothesis drives random operations of two tenants that use
the same key, bucket and object names, through every kind of endpoint (KV flat and bucketed, batch,
merge patch, list, tag filter, history, exists, count, buckets, objects, watch snapshots, audit,
usage), against a real uvicorn API and a real worker on dedicated Redis servers.

Every value and object a tenant writes carries its own marker, so a response that shows the other
tenant's data is caught whatever the endpoint; reads are also checked against a model of what the
tenant itself wrote, usage against its own counts, and audit events against its own username."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.platform.embedded_redis import RedisProcess
from tests.support.api_process import ApiProcess
from tests.support.consumer import run_consumer
from tests.support.tenants import register_sync

pytestmark = pytest.mark.subprocess

API = "/api/v1"
KEYS = ["a", "b", "c"]
BUCKETS = ["default", "shared"]
OBJECTS = ["o1", "dir/o2"]

tenant_index = st.integers(0, 1)
key = st.sampled_from(KEYS)
bucket = st.sampled_from(BUCKETS)
obj = st.sampled_from(OBJECTS)
operation = st.one_of(
    st.tuples(st.just("put"), tenant_index, bucket, key),
    st.tuples(st.just("get"), tenant_index, bucket, key),
    st.tuples(st.just("delete"), tenant_index, bucket, key),
    st.tuples(st.just("patch"), tenant_index, bucket, key),
    st.tuples(st.just("batch"), tenant_index, bucket, st.lists(key, min_size=1, max_size=3, unique=True)),
    st.tuples(st.just("list"), tenant_index, bucket),
    st.tuples(st.just("tagged"), tenant_index, bucket),
    st.tuples(st.just("history"), tenant_index, bucket, key),
    st.tuples(st.just("exists"), tenant_index, bucket, key),
    st.tuples(st.just("count"), tenant_index, bucket),
    st.tuples(st.just("create_bucket"), tenant_index),
    st.tuples(st.just("delete_bucket"), tenant_index),
    st.tuples(st.just("list_buckets"), tenant_index),
    st.tuples(st.just("object_bucket"), tenant_index),
    st.tuples(st.just("object_put"), tenant_index, obj),
    st.tuples(st.just("object_get"), tenant_index, obj),
    st.tuples(st.just("object_list"), tenant_index),
    st.tuples(st.just("object_delete"), tenant_index, obj),
    st.tuples(st.just("watch"), tenant_index, bucket),
    st.tuples(st.just("usage"), tenant_index),
    st.tuples(st.just("audit"), tenant_index),
)


@dataclass
class Tenant:
    username: str
    tenant_id: str
    headers: dict[str, str]
    mark: str
    kv: dict[str, dict[str, dict]] = field(default_factory=lambda: {"default": {}})
    objects: dict[str, bytes] | None = None  # None: no object bucket yet
    writes: itertools.count = field(default_factory=itertools.count)

    def value(self) -> dict:
        return {"owner": self.mark, "n": next(self.writes)}


class Run:
    def __init__(self, http: httpx.Client, tenants: list[Tenant]) -> None:
        self.http = http
        self.tenants = tenants

    def check(self, me: Tenant, response: httpx.Response) -> httpx.Response:
        other = self.tenants[1] if me is self.tenants[0] else self.tenants[0]
        assert response.status_code < 500, response.text
        body = response.content
        assert other.mark.encode() not in body, f"{me.username} saw {other.username}'s data: {body[:300]!r}"
        assert other.tenant_id.encode() not in body, f"{me.username} saw {other.username}'s tenant id"
        assert other.username.encode() not in body, f"{me.username} saw {other.username}'s name"
        return response

    def call(self, me: Tenant, method: str, path: str, **kwargs: object) -> httpx.Response:
        return self.check(me, self.http.request(method, API + path, headers=me.headers, **kwargs))  # type: ignore[arg-type]

    @staticmethod
    def keys_path(bucket_name: str, key_name: str = "") -> str:
        base = "/kv" if bucket_name == "default" else f"/kv/buckets/{bucket_name}/keys"
        return f"{base}/{key_name}" if key_name else base

    def apply(self, op: tuple) -> None:
        name, me = op[0], self.tenants[op[1]]
        getattr(self, f"op_{name}")(me, *op[2:])

    # -- KV ---------------------------------------------------------------------------------------

    def op_put(self, me: Tenant, bucket_name: str, key_name: str) -> None:
        value = me.value()
        response = self.call(
            me, "PUT", self.keys_path(bucket_name, key_name), json={"value": value, "tags": {"t": "x"}}
        )
        if bucket_name in me.kv:
            assert response.status_code in (200, 201), response.text
            me.kv[bucket_name][key_name] = value
        else:
            assert response.status_code == 404, response.text

    def op_get(self, me: Tenant, bucket_name: str, key_name: str) -> None:
        response = self.call(me, "GET", self.keys_path(bucket_name, key_name))
        expected = me.kv.get(bucket_name, {}).get(key_name)
        if expected is None:
            assert response.status_code == 404, response.text
        else:
            assert response.status_code == 200 and response.json()["value"] == expected, response.text

    def op_delete(self, me: Tenant, bucket_name: str, key_name: str) -> None:
        response = self.call(me, "DELETE", self.keys_path(bucket_name, key_name))
        existed = me.kv.get(bucket_name, {}).pop(key_name, None) is not None
        assert response.status_code == (200 if existed else 404), response.text

    def op_patch(self, me: Tenant, bucket_name: str, key_name: str) -> None:
        patch = {"patched_by": me.mark}
        headers = {**me.headers, "Content-Type": "application/merge-patch+json"}
        response = self.check(
            me, self.http.patch(API + self.keys_path(bucket_name, key_name), content=json.dumps(patch), headers=headers)
        )
        current = me.kv.get(bucket_name, {}).get(key_name)
        if current is None:
            assert response.status_code == 404, response.text
        else:
            assert response.status_code == 200, response.text
            me.kv[bucket_name][key_name] = {**current, **patch}
            assert response.json()["value"] == me.kv[bucket_name][key_name]

    def op_batch(self, me: Tenant, bucket_name: str, key_names: list[str]) -> None:
        items = [{"key": k, "value": me.value(), "tags": {"t": "x"}} for k in key_names]
        response = self.call(me, "POST", self.keys_path(bucket_name) + "/batch", json={"items": items})
        if bucket_name in me.kv:
            assert response.status_code == 200, response.text
            me.kv[bucket_name].update({item["key"]: item["value"] for item in items})
            got = self.call(me, "POST", self.keys_path(bucket_name) + "/batch/get", json={"keys": KEYS})
            assert {e["key"]: e["value"] for e in got.json()["items"]} == me.kv[bucket_name]
        else:
            assert response.status_code == 404, response.text

    def op_list(self, me: Tenant, bucket_name: str) -> None:
        response = self.call(me, "GET", self.keys_path(bucket_name), params={"limit": 100})
        if bucket_name in me.kv:
            assert {e["key"]: e["value"] for e in response.json()["items"]} == me.kv[bucket_name]

    def op_tagged(self, me: Tenant, bucket_name: str) -> None:
        response = self.call(me, "GET", self.keys_path(bucket_name), params={"tag_filter": "t:x", "limit": 100})
        if bucket_name in me.kv:
            assert sorted(e["key"] for e in response.json()["items"]) == sorted(me.kv[bucket_name])

    def op_history(self, me: Tenant, bucket_name: str, key_name: str) -> None:
        response = self.call(me, "GET", self.keys_path(bucket_name, key_name) + "/history")
        if response.status_code == 200:
            for item in response.json()["items"]:
                assert item["value"] is None or item["value"]["owner"] == me.mark

    def op_exists(self, me: Tenant, bucket_name: str, key_name: str) -> None:
        response = self.call(me, "GET", self.keys_path(bucket_name, key_name) + "/exists")
        if bucket_name in me.kv:
            assert response.json()["exists"] == (key_name in me.kv[bucket_name]), response.text

    def op_count(self, me: Tenant, bucket_name: str) -> None:
        response = self.call(me, "GET", self.keys_path(bucket_name) + "/stats/count")
        if bucket_name in me.kv:
            assert response.json()["count"] == len(me.kv[bucket_name]), response.text

    def op_create_bucket(self, me: Tenant) -> None:
        response = self.call(me, "POST", "/kv/buckets", json={"name": "shared", "description": me.mark})
        assert response.status_code == (409 if "shared" in me.kv else 201), response.text
        me.kv.setdefault("shared", {})

    def op_delete_bucket(self, me: Tenant) -> None:
        response = self.call(me, "DELETE", "/kv/buckets/shared")
        assert response.status_code == (200 if me.kv.pop("shared", None) is not None else 404), response.text

    def op_list_buckets(self, me: Tenant) -> None:
        response = self.call(me, "GET", "/kv/buckets")
        names = {b["name"] for b in response.json()["items"]} - {"default"}
        assert names == set(me.kv) - {"default"}, response.text

    # -- objects ------------------------------------------------------------------------------------

    def op_object_bucket(self, me: Tenant) -> None:
        response = self.call(me, "POST", "/objects/buckets", json={"name": "files", "description": me.mark})
        assert response.status_code == (201 if me.objects is None else 409), response.text
        if me.objects is None:
            me.objects = {}

    def op_object_put(self, me: Tenant, name: str) -> None:
        content = f"{me.mark}:{next(me.writes)}".encode()
        response = self.call(me, "PUT", f"/objects/buckets/files/objects/{name}", content=content)
        if me.objects is None:
            assert response.status_code == 404, response.text
        else:
            assert response.status_code in (200, 201), response.text
            me.objects[name] = content

    def op_object_get(self, me: Tenant, name: str) -> None:
        response = self.call(me, "GET", f"/objects/buckets/files/objects/{name}")
        expected = (me.objects or {}).get(name)
        if expected is None:
            assert response.status_code == 404, response.text
        else:
            assert response.status_code == 200 and response.content == expected, response.text

    def op_object_list(self, me: Tenant) -> None:
        response = self.call(me, "GET", "/objects/buckets/files/objects")
        if me.objects is not None:
            assert sorted(item["name"] for item in response.json()["items"]) == sorted(me.objects)

    def op_object_delete(self, me: Tenant, name: str) -> None:
        response = self.call(me, "DELETE", f"/objects/buckets/files/objects/{name}")
        existed = me.objects is not None and me.objects.pop(name, None) is not None
        assert response.status_code == (200 if existed else 404), response.text

    # -- watch, usage, audit ----------------------------------------------------------------------

    def op_watch(self, me: Tenant, bucket_name: str) -> None:
        path = "/kv/watch" if bucket_name == "default" else f"/kv/buckets/{bucket_name}/watch"
        with self.http.stream("GET", API + path, params={"snapshot": "true"}, headers=me.headers) as response:
            if response.status_code != 200:
                response.read()
                self.check(me, response)
                assert bucket_name not in me.kv, response.text
                return
            snapshot: dict[str, dict] = {}
            event = ""
            for line in response.iter_lines():
                other = self.tenants[1] if me is self.tenants[0] else self.tenants[0]
                assert other.mark not in line and other.tenant_id not in line, line
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "snapshot":
                    data = json.loads(line.partition(":")[2])
                    snapshot[data["key"]] = data["value"]
                elif line.startswith("data:") and event == "ready":
                    break
        assert snapshot == me.kv.get(bucket_name, {})

    def op_usage(self, me: Tenant) -> None:
        usage = self.call(me, "GET", "/usage").json()
        assert usage["keys"] == sum(len(keys) for keys in me.kv.values()), usage
        assert usage["objects"] == len(me.objects or {}), usage

    def op_audit(self, me: Tenant) -> None:
        events = self.call(me, "GET", "/audit", params={"limit": 1000}).json()["items"]
        assert {event["username"] for event in events} <= {me.username}, events


usernames = itertools.count()


def test_two_tenants_with_colliding_names_never_see_each_others_data(
    redis_server: Callable[..., RedisProcess], api_process: Callable[..., ApiProcess], tmp_path: Path
) -> None:
    data = redis_server("data", appendonly=False)
    queue = redis_server("queue", appendonly=False)
    api = api_process({"REDIS_URL": data.url, "HUEY_REDIS_URL": queue.url, "RATE_LIMIT_PER_SECOND": "0"})
    audited: list[Tenant] = []
    with run_consumer(data.url, queue.url, tmp_path / "worker.log"), httpx.Client(base_url=api.url, timeout=15) as http:

        @given(operations=st.lists(operation, min_size=10, max_size=40))
        @settings(max_examples=30, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def scenario(operations: list[tuple]) -> None:
            tenants = []
            for _ in range(2):
                username = f"tenant{next(usernames)}x"
                registered = register_sync(api.url, username)
                tenants.append(Tenant(username, registered["tenant_id"], registered["headers"], f"MARK-{username}-"))
            run = Run(http, tenants)
            for op in operations:
                run.apply(op)
            for tenant in tenants:  # the final state of each, through every listing
                for bucket_name in list(tenant.kv):
                    run.op_list(tenant, bucket_name)
                run.op_usage(tenant)
                run.op_audit(tenant)
            audited.extend(tenants)

        scenario()
        # The audit check above was not vacuous: the worker delivered the tenants' events.
        last = audited[-1]
        deadline = time.monotonic() + 15
        while not httpx.get(f"{api.url}{API}/audit", headers=last.headers).json()["items"]:
            if time.monotonic() > deadline:
                pytest.fail("no audit event was ever delivered")
            time.sleep(0.2)
        Run(http, audited[-2:]).op_audit(last)
