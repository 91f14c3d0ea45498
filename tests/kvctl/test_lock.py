"""kvctl lock NAME -- COMMAND against a fake API: lease, lock, the command with its token, release."""

from __future__ import annotations

import json
import sys

import httpx
import pytest

pytestmark = pytest.mark.usefixtures("logged_in")

LEASE = "0123456789abcdef"


def fake_api(holder_answers: list[int] | None = None):  # type: ignore[no-untyped-def]
    answers = list(holder_answers or [])

    def handle(request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if (method, path) == ("POST", "/api/v1/leases"):
            return httpx.Response(201, json={"id": LEASE, "ttl": 1, "expires_at": "2030-01-01T00:00:00.000Z"})
        if method == "POST" and path == f"/api/v1/leases/{LEASE}/keepalive":
            return httpx.Response(200, json={"id": LEASE, "ttl": 1, "expires_at": "2030-01-01T00:00:00.000Z"})
        if (method, path) == ("POST", "/api/v1/locks/deploy"):
            if answers and answers.pop(0) == 409:
                return httpx.Response(409, json={"code": "lock_held", "detail": "held", "holder": "x"})
            return httpx.Response(200, json={"name": "deploy", "lease": LEASE, "token": 7, "acquired_at": "x"})
        if method == "DELETE" and path in ("/api/v1/locks/deploy", f"/api/v1/leases/{LEASE}"):
            return httpx.Response(200, json={"message": "ok", "token": 7, "deleted": []})
        return httpx.Response(404, json={"code": "not_found", "detail": path})

    return handle


def test_the_command_runs_with_the_token_and_the_lock_is_released_after(kvctl, tmp_path) -> None:
    out = tmp_path / "env.json"
    script = f"import json, os, time; time.sleep(0.5); json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    result = kvctl(["lock", "deploy", "--ttl", "1", "--", sys.executable, "-c", script], fake_api())
    assert result.code == 0, result.err
    env = json.loads(out.read_text())
    assert env["KVCTL_LOCK_TOKEN"] == "7" and env["KVCTL_LOCK_LEASE"] == LEASE and env["KVCTL_LOCK_NAME"] == "deploy"
    calls = [(r.method, r.url.path) for r in result.requests]
    assert calls[0] == ("POST", "/api/v1/leases")
    assert json.loads(result.requests[0].content) == {"ttl": 1}
    assert calls[1] == ("POST", "/api/v1/locks/deploy")
    assert json.loads(result.requests[1].content)["lease"] == LEASE
    assert ("POST", f"/api/v1/leases/{LEASE}/keepalive") in calls  # kept alive while the command ran
    assert calls[-2:] == [("DELETE", "/api/v1/locks/deploy"), ("DELETE", f"/api/v1/leases/{LEASE}")]
    release = result.requests[-2]
    assert release.url.params["lease"] == LEASE


def test_the_exit_code_is_the_commands(kvctl) -> None:
    result = kvctl(["lock", "deploy", "--", sys.executable, "-c", "raise SystemExit(5)"], fake_api())
    assert result.code == 5
    assert [(r.method, r.url.path) for r in result.requests][-1] == ("DELETE", f"/api/v1/leases/{LEASE}")


def test_a_held_lock_is_waited_for_in_rounds(kvctl) -> None:
    result = kvctl(["lock", "deploy", "--wait", "100", "--", sys.executable, "-c", "pass"], fake_api([409, 409]))
    assert result.code == 0, result.err
    assert sum(1 for r in result.requests if r.url.path == "/api/v1/locks/deploy" and r.method == "POST") == 3


def test_a_lock_not_acquired_in_time_runs_nothing_and_revokes_the_lease(kvctl, tmp_path) -> None:
    marker = tmp_path / "ran"
    result = kvctl(
        ["lock", "deploy", "--wait", "0", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"], fake_api([409])
    )
    assert result.code == 1 and "held" in result.err
    assert not marker.exists()
    assert [(r.method, r.url.path) for r in result.requests][-1] == ("DELETE", f"/api/v1/leases/{LEASE}")


def test_a_command_is_required(kvctl) -> None:
    result = kvctl(["lock", "deploy"], fake_api())
    assert result.code == 1 and "command" in result.err


def test_a_lost_lease_terminates_the_command(kvctl) -> None:
    handle = fake_api()

    def losing(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/keepalive"):
            return httpx.Response(404, json={"code": "lease_not_found", "detail": "gone"})
        return handle(request)

    result = kvctl(["lock", "deploy", "--ttl", "1", "--", sys.executable, "-c", "import time; time.sleep(30)"], losing)
    assert result.code == 3 and "lost" in result.err
    calls = [(r.method, r.url.path) for r in result.requests]
    assert ("DELETE", "/api/v1/locks/deploy") not in calls  # it holds nothing any more
