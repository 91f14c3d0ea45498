"""kvctl api-keys create|list|revoke and the --api-key / $KVCTL_API_KEY credential, against a fake API."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.kvctl_fakes import problem

KEY = "kvs_" + "0" * 48 + "a" * 43
CREATED = {
    "id": "0123456789abcdef",
    "name": "ci",
    "key": KEY,
    "scopes": ["kv:read", "kv:watch"],
    "buckets": ["config"],
    "key_prefix": "app:",
    "created_at": "2026-01-01T00:00:00Z",
    "expires_at": None,
}


def test_create_sends_the_grant_and_prints_the_secret_once(kvctl, logged_in) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer access-1"
        return httpx.Response(201, json=CREATED)

    run = kvctl(
        [
            "api-keys",
            "create",
            "ci",
            "--scope",
            "kv:read,kv:watch",
            "--buckets",
            "config",
            "--key-prefix",
            "app:",
            "--expires-in",
            "3600",
        ],
        answer,
    )
    assert run.code == 0, run.err
    assert run.out == KEY + "\n"
    assert "shown only once" in run.err
    [request] = run.requests
    assert (request.method, request.url.path) == ("POST", "/api/v1/auth/api-keys")
    assert json.loads(request.content) == {
        "name": "ci",
        "scopes": ["kv:read", "kv:watch"],
        "buckets": ["config"],
        "key_prefix": "app:",
        "expires_in": 3600,
    }


def test_create_needs_a_scope(kvctl, logged_in) -> None:
    run = kvctl(["api-keys", "create", "ci"])
    assert run.code == 1 and "--scope" in run.err


def test_list_is_a_table_without_secrets(kvctl, logged_in) -> None:
    listed = {k: v for k, v in CREATED.items() if k != "key"} | {"last_used_at": None}
    run = kvctl(["api-keys"], lambda request: httpx.Response(200, json={"items": [listed]}))
    assert run.code == 0, run.err
    assert "0123456789abcdef" in run.out and "kv:read,kv:watch" in run.out and "app:" in run.out
    assert run.requests[0].url.path == "/api/v1/auth/api-keys"


def test_revoke(kvctl, logged_in) -> None:
    run = kvctl(["api-keys", "revoke", "0123456789abcdef"], lambda request: httpx.Response(204))
    assert run.code == 0, run.err
    assert (run.requests[0].method, run.requests[0].url.path) == ("DELETE", "/api/v1/auth/api-keys/0123456789abcdef")
    missing = kvctl(["api-keys", "revoke", "nope"], lambda request: problem(404, "api_key_not_found", "no API key"))
    assert missing.code == 1 and "no API key" in missing.err


@pytest.mark.parametrize("how", ["option", "env"])
def test_an_api_key_replaces_the_login(kvctl, config_file, monkeypatch, how) -> None:
    """No saved login needed; the key is the bearer; a 401 is final (nothing to refresh)."""
    argv = ["get", "k"]
    if how == "option":
        argv = ["--api-key", KEY, *argv]
    else:
        monkeypatch.setenv("KVCTL_API_KEY", KEY)

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        return httpx.Response(200, json={"key": "k", "value": 42, "metadata": {"version": 1}})

    run = kvctl(argv, answer)
    assert run.code == 0, run.err
    assert run.out == "42\n"
    refused = kvctl(argv, lambda request: problem(401, "invalid_token", "API key is invalid or revoked"))
    assert refused.code == 1
    assert len(refused.requests) == 1  # no refresh attempt
    assert "revoked" in refused.err


def test_a_403_names_the_missing_scope(kvctl, config_file) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return problem(403, "insufficient_scope", "this API key lacks the scope 'kv:write'")

    run = kvctl(["--api-key", KEY, "put", "k", "1"], answer)
    assert run.code == 1
    assert "kv:write" in run.err and "insufficient_scope" in run.err
