"""POST /api/v1/events: CloudEvents 1.0 commits as the event-sourced SSE store's clients send them (its
README's requests, structured and binary mode): create, merge-patch, delete; idempotent by source + id."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.api_keys import create_key, key_headers
from tests.support.tenants import bearer, register

EVENTS = "/api/v1/events"
KV = "/api/v1/kv"


def event(event_id: str, data: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """An event as the earlier store's README writes them."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "my-app",
        "type": "nl.vng.zaken.json-commit.v1",
        "subject": "issue/123",
        "data": {"schema": "http://localhost:8000/schemas/Issue", "resource_id": "123", **data},
        **attributes,
    }


CREATE = event("event-001", {"resource_data": {"title": "Bug in login", "status": "open", "description": "x"}})
PATCH = event("event-002", {"patch": {"status": "in-progress", "assignee": "john@example.com", "description": None}})
DELETE = event("event-003", {"deleted": True})


async def send(client: httpx.AsyncClient, tenant: dict, body: Any, **headers: str) -> httpx.Response:
    return await client.post(
        EVENTS, content=json.dumps(body), headers={**bearer(tenant), "Content-Type": "application/json", **headers}
    )


async def entry(client: httpx.AsyncClient, tenant: dict, key: str = "123", bucket: str | None = None) -> httpx.Response:
    path = f"{KV}/buckets/{bucket}/keys/{key}" if bucket else f"{KV}/{key}"
    return await client.get(path, headers=bearer(tenant))


@pytest.mark.contract
async def test_create_patch_delete_as_the_earlier_store_documents_them(client: httpx.AsyncClient, tenant: dict):
    created = await send(client, tenant, CREATE)
    assert created.status_code == 201, created.text
    assert created.json()["key"] == "123" and created.json()["value"]["title"] == "Bug in login"
    assert created.headers["etag"] == '"1"'
    patched = await send(client, tenant, PATCH)
    assert patched.status_code == 200, patched.text
    assert patched.json()["value"] == {"title": "Bug in login", "status": "in-progress", "assignee": "john@example.com"}
    assert (await entry(client, tenant)).json()["metadata"]["version"] == 2
    deleted = await send(client, tenant, DELETE)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] is True and deleted.json()["key"] == "123"
    assert (await entry(client, tenant)).status_code == 404


async def test_the_same_event_again_returns_the_first_result_and_changes_nothing(
    client: httpx.AsyncClient, tenant: dict
):
    first = await send(client, tenant, CREATE)
    await send(client, tenant, PATCH)
    again = await send(client, tenant, CREATE)  # replaying the create does not undo the patch
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    current = (await entry(client, tenant)).json()
    assert current["metadata"]["version"] == 2 and current["value"]["status"] == "in-progress"
    patch_again = await send(client, tenant, PATCH)
    assert patch_again.status_code == 200 and patch_again.headers["idempotent-replayed"] == "true"
    assert (await entry(client, tenant)).json()["metadata"]["version"] == 2


async def test_another_event_under_a_used_source_and_id_is_422(client: httpx.AsyncClient, tenant: dict):
    assert (await send(client, tenant, CREATE)).status_code == 201
    other = event("event-001", {"resource_data": {"title": "something else"}})
    response = await send(client, tenant, other)
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"
    assert (await entry(client, tenant)).json()["value"]["title"] == "Bug in login"
    # the same id from another source is another event
    elsewhere = await send(client, tenant, {**other, "source": "another-app"})
    assert elsewhere.status_code == 200
    assert (await entry(client, tenant)).json()["value"] == {"title": "something else"}


async def test_events_are_per_tenant(client: httpx.AsyncClient, tenant: dict):
    bob = await register(client, "bob")
    assert (await send(client, tenant, CREATE)).status_code == 201
    theirs = await send(client, bob, CREATE)
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert (await entry(client, bob)).json()["metadata"]["version"] == 1


async def test_binary_mode_with_ce_headers(client: httpx.AsyncClient, tenant: dict):
    create = await client.post(EVENTS, json={"admin": 1}, headers=bearer(tenant))  # not an event
    assert create.status_code == 422
    await client.post(f"{KV}/buckets", json={"name": "issues"}, headers=bearer(tenant))
    headers = {
        **bearer(tenant),
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "my%20app",  # percent-encoded, as the HTTP binding says
        "ce-type": "nl.vng.zaken.json-commit.v1",
        "ce-subject": "issue:7",
        "ce-bucket": "issues",
    }
    response = await client.post(EVENTS, json={"resource_data": {"title": "t"}}, headers=headers)
    assert response.status_code == 201, response.text
    assert (await entry(client, tenant, "issue:7", "issues")).json()["value"] == {"title": "t"}
    again = await client.post(EVENTS, json={"resource_data": {"title": "t"}}, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    # the same event in structured mode is the same event
    structured = {
        "specversion": "1.0",
        "id": "b-1",
        "source": "my app",
        "type": "nl.vng.zaken.json-commit.v1",
        "subject": "issue:7",
        "bucket": "issues",
        "data": {"resource_data": {"title": "t"}},
    }
    same = await send(client, tenant, structured, **{"Content-Type": "application/cloudevents+json"})
    assert same.status_code == 201 and same.headers["idempotent-replayed"] == "true"


async def test_a_bucket_from_data_and_a_missing_bucket(client: httpx.AsyncClient, tenant: dict):
    await client.post(f"{KV}/buckets", json={"name": "issues"}, headers=bearer(tenant))
    created = await send(client, tenant, event("d-1", {"bucket": "issues", "resource_data": 1}))
    assert created.status_code == 201
    assert (await entry(client, tenant, "123", "issues")).json()["value"] == 1
    missing = await send(client, tenant, event("d-2", {"bucket": "nope", "resource_data": 1}))
    assert missing.status_code == 404 and missing.json()["code"] == "bucket_not_found"


async def test_a_failed_event_is_not_kept_so_it_can_apply_later(client: httpx.AsyncClient, tenant: dict):
    early = await send(client, tenant, PATCH)  # the patch arrives before the create
    assert early.status_code == 404 and early.json()["code"] == "key_not_found"
    assert (await send(client, tenant, CREATE)).status_code == 201
    late = await send(client, tenant, PATCH)
    assert late.status_code == 200 and "idempotent-replayed" not in late.headers
    assert late.json()["value"]["status"] == "in-progress"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CREATE, "specversion": None}, "specversion"),
        ({**CREATE, "specversion": "0.3"}, "specversion"),
        ({k: v for k, v in CREATE.items() if k != "id"}, "id"),
        ({**CREATE, "source": ""}, "source"),
        ({**CREATE, "type": 5}, "type"),
        ({**CREATE, "data": "x"}, "data"),
        ({**CREATE, "data": {"resource_id": "1"}}, "data"),
        ({**CREATE, "data": {"resource_id": "1", "resource_data": 1, "deleted": True}}, "data"),
        ({**CREATE, "data": {"resource_id": "1", "deleted": "yes"}}, "data.deleted"),
        ({**CREATE, "data": {"resource_id": "1", "patch": [1]}}, "data.patch"),
        ({**CREATE, "data": {"resource_id": ["1"], "resource_data": 1}}, "data.resource_id"),
        ({**CREATE, "subject": None, "data": {"resource_data": 1}}, "data.resource_id"),
        ({**CREATE, "data_base64": "AA=="}, "data_base64"),
        ({**CREATE, "Bad-Name": 1}, "Bad-Name"),
        ({**CREATE, "id": "\ud800"}, "id"),
        ([CREATE], "body"),
    ],
)
async def test_a_malformed_event_is_422_naming_the_attribute(
    client: httpx.AsyncClient, tenant: dict, body: Any, field: str
):
    response = await send(client, tenant, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field
    assert (await entry(client, tenant)).status_code == 404


async def test_a_bad_key_or_value_is_the_key_routes_422(client: httpx.AsyncClient, tenant: dict):
    bad_key = await send(client, tenant, event("k-1", {"resource_id": "a/b", "resource_data": 1}))
    assert bad_key.status_code == 422
    deep = {"a": None}
    for _ in range(100):
        deep = {"a": deep}
    too_deep = await send(client, tenant, event("k-2", {"resource_data": deep}))
    assert too_deep.status_code == 422


async def test_media_types(client: httpx.AsyncClient, tenant: dict):
    text = await client.post(EVENTS, content=b"hello", headers={**bearer(tenant), "Content-Type": "text/plain"})
    assert text.status_code == 415
    batch = await send(client, tenant, [CREATE], **{"Content-Type": "application/cloudevents-batch+json"})
    assert batch.status_code == 415
    other_data = await send(client, tenant, {**CREATE, "datacontenttype": "text/xml"})
    assert other_data.status_code == 415


async def test_needs_kv_write_and_the_keys_bucket_and_prefix(client: httpx.AsyncClient, tenant: dict):
    reader = await create_key(client, bearer(tenant), scopes=["kv:read"])
    refused = await client.post(EVENTS, json=CREATE, headers=key_headers(reader))
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    elsewhere = await create_key(client, bearer(tenant), scopes=["kv:write"], buckets=["other"])
    assert (await client.post(EVENTS, json=CREATE, headers=key_headers(elsewhere))).status_code == 403
    prefixed = await create_key(client, bearer(tenant), scopes=["kv:write"], key_prefix="issue-")
    assert (await client.post(EVENTS, json=CREATE, headers=key_headers(prefixed))).status_code == 403
    assert (await entry(client, tenant)).status_code == 404
    assert (await client.post(EVENTS, json=CREATE)).status_code == 401
