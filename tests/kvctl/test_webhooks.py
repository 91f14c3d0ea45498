"""kvctl webhooks create|list|deliveries|test|delete, against a fake API."""

from __future__ import annotations

import json

import httpx

HOOK = {
    "id": "wh_0123456789abcdef",
    "url": "https://hooks.example.com/kv",
    "buckets": ["config"],
    "events": ["kv.put"],
    "key_prefix": "app:",
    "description": "",
    "enabled": False,
    "disabled_reason": "every delivery failed for 86400 s",
    "failing_since": None,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}


def test_create_sends_the_filters_and_prints_the_secret_once(kvctl, logged_in) -> None:
    run = kvctl(
        [
            "webhooks",
            "create",
            HOOK["url"],
            "--buckets",
            "config",
            "--events",
            "kv.put,kv.delete",
            "--key-prefix",
            "app:",
        ],
        lambda request: httpx.Response(201, json={**HOOK, "secret": "whsec_abc"}),
    )
    assert run.code == 0, run.err
    assert run.out == "whsec_abc\n" and "shown only once" in run.err
    [request] = run.requests
    assert (request.method, request.url.path) == ("POST", "/api/v1/webhooks")
    assert json.loads(request.content) == {
        "url": HOOK["url"],
        "buckets": ["config"],
        "events": ["kv.put", "kv.delete"],
        "key_prefix": "app:",
    }


def test_list_shows_why_a_webhook_is_disabled(kvctl, logged_in) -> None:
    run = kvctl(["webhooks", "list"], lambda request: httpx.Response(200, json={"items": [HOOK]}))
    assert run.code == 0, run.err
    assert HOOK["id"] in run.out and "every delivery failed" in run.out


def test_deliveries_test_and_delete_call_their_routes(kvctl, logged_in) -> None:
    delivery = {
        "id": "7",
        "event_id": "msg_kv_1_7",
        "type": "kv.put",
        "bucket": "config",
        "key": "app:x",
        "revision": 7,
        "state": "retrying",
        "attempts": 2,
        "last_status": 503,
        "last_response": "busy",
        "latency_ms": 12,
        "last_attempt_at": None,
        "next_attempt_at": "2026-01-01T00:00:05Z",
        "created_at": "2026-01-01T00:00:00Z",
    }
    run = kvctl(
        ["webhooks", "deliveries", HOOK["id"], "--limit", "1"],
        lambda request: httpx.Response(200, json={"items": [delivery], "next_cursor": "7"}),
    )
    assert run.code == 0, run.err
    assert "msg_kv_1_7" in run.out and "503" in run.out and "--cursor 7" in run.err
    assert run.requests[0].url.path == f"/api/v1/webhooks/{HOOK['id']}/deliveries"
    assert run.requests[0].url.params["limit"] == "1"

    run = kvctl(["webhooks", "test", HOOK["id"]], lambda request: httpx.Response(202, json=delivery))
    assert run.code == 0 and run.requests[0].method == "POST"
    assert run.requests[0].url.path == f"/api/v1/webhooks/{HOOK['id']}/test"

    run = kvctl(["webhooks", "delete", HOOK["id"]], lambda request: httpx.Response(204))
    assert run.code == 0 and run.requests[0].method == "DELETE" and "deleted webhook" in run.out
