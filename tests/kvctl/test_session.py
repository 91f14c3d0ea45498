"""kvctl's session handling: login/register save tokens (0600), refresh is transparent, logout forgets."""

from __future__ import annotations

import io
import json
import stat
import sys
import time
from pathlib import Path

import httpx
import pytest
from filelock import FileLock

from kvctl.config import ConfigStore, Session
from tests.support.kvctl_fakes import URL, problem

PAIR = {"access_token": "access-2", "refresh_token": "refresh-2", "token_type": "bearer", "expires_in": 1800}


def test_login_saves_the_session_in_a_0600_file(kvctl, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Secret123\n"))
    result = kvctl(["login", "-u", "Alice", "--password-stdin"], lambda r: httpx.Response(200, json=PAIR))
    assert result.code == 0, result.err
    assert result.bodies() == [{"username": "alice", "password": "Secret123"}]
    assert "Authorization" not in result.requests[0].headers
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    session = ConfigStore(config_file).session(URL)
    assert session is not None
    assert (session.username, session.access_token, session.refresh_token) == ("alice", "access-2", "refresh-2")
    assert session.expires_at == pytest.approx(time.time() + 1800, abs=60)
    assert result.out == f"logged in as alice on {URL} (session saved in {config_file})\n"


def test_register_takes_the_password_from_the_environment(kvctl, config_file, monkeypatch) -> None:
    monkeypatch.setenv("KVCTL_PASSWORD", "Secret123")
    answer = {**PAIR, "tenant_id": "t-1"}
    result = kvctl(
        ["--json", "register", "-u", "bob", "-e", "bob@example.com"], lambda r: httpx.Response(201, json=answer)
    )
    assert result.code == 0, result.err
    assert result.requests[0].url.path == "/api/v1/auth/register"
    assert result.bodies() == [{"username": "bob", "email": "bob@example.com", "password": "Secret123"}]
    shown = json.loads(result.out)
    assert (shown["username"], shown["tenant_id"], shown["url"]) == ("bob", "t-1", URL)
    assert "access_token" not in shown  # tokens stay in the config file
    assert ConfigStore(config_file).session(URL).tenant_id == "t-1"  # type: ignore[union-attr]


def test_login_without_password_source_fails_clearly(kvctl, config_file, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    result = kvctl(["login", "-u", "alice"])
    assert result.code == 1
    assert "no password" in result.err


def test_bad_credentials_show_the_server_detail(kvctl, config_file) -> None:
    result = kvctl(
        ["login", "-u", "alice", "-p", "wrong"], lambda r: problem(401, "invalid_credentials", "Incorrect password")
    )
    assert (result.code, result.err) == (1, "error: Incorrect password (invalid_credentials, HTTP 401)\n")
    assert not config_file.exists()


def test_not_logged_in_says_how_to_log_in(kvctl, config_file) -> None:
    result = kvctl(["get", "k"])
    assert (result.code, result.err) == (1, f"error: not logged in to {URL}; run: kvctl login\n")


def test_sessions_are_per_server(kvctl, logged_in) -> None:
    result = kvctl(["--url", "http://other.test", "whoami"], lambda r: httpx.Response(200, json={"status": "ok"}))
    assert result.code == 1
    assert "not logged in to http://other.test" in result.err
    assert all("Authorization" not in r.headers for r in result.requests)  # alice's token stays home


def test_expired_access_token_is_refreshed_and_the_request_retried(kvctl, logged_in, config_file) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/refresh":
            assert json.loads(request.content) == {"refresh_token": "refresh-1"}
            return httpx.Response(200, json=PAIR)
        if request.headers["Authorization"] == "Bearer access-1":
            return problem(401, "invalid_token", "Token has expired")
        return httpx.Response(200, json={"username": "alice", "email": "a@x", "tenant_id": "tenant-1"})

    result = kvctl(["whoami"], server)
    assert result.code == 0, result.err
    assert [r.url.path for r in result.requests] == ["/api/v1/auth/me", "/api/v1/auth/refresh", "/api/v1/auth/me"]
    assert result.requests[2].headers["Authorization"] == "Bearer access-2"
    saved = ConfigStore(config_file).session(URL)
    assert (saved.access_token, saved.refresh_token) == ("access-2", "refresh-2")  # type: ignore[union-attr]
    assert result.out == f"alice <a@x> tenant tenant-1 on {URL}\n"


def test_access_token_known_to_be_expired_is_refreshed_first(kvctl, config_file) -> None:
    ConfigStore(config_file).set_session(URL, Session("alice", "access-1", "refresh-1", time.time() - 5))
    result = kvctl(["token"], lambda r: httpx.Response(200, json=PAIR))
    assert [r.url.path for r in result.requests] == ["/api/v1/auth/refresh"]
    assert result.out == "access-2\n"


def test_refused_refresh_asks_for_a_new_login(kvctl, logged_in) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/refresh":
            return problem(401, "refresh_token_reused", "Refresh token was already used")
        return problem(401, "invalid_token", "Token has expired")

    result = kvctl(["get", "k"], server)
    assert result.code == 1
    assert result.err == f"error: the session on {URL} has expired or was revoked; run: kvctl login\n"
    assert len(result.requests) == 2  # no retry loop


def test_a_refresh_done_by_another_kvctl_is_reused(kvctl, logged_in, config_file) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") == "Bearer access-1":
            # Meanwhile another kvctl process rotated the pair and saved it.
            ConfigStore(config_file).set_session(URL, Session("alice", "access-9", "refresh-9", time.time() + 600))
            return problem(401, "invalid_token", "Token has expired")
        return httpx.Response(200, json={"username": "alice", "email": "a@x", "tenant_id": "t"})

    result = kvctl(["whoami"], server)
    assert result.code == 0, result.err
    assert [r.url.path for r in result.requests] == ["/api/v1/auth/me", "/api/v1/auth/me"]  # no /refresh
    assert result.requests[1].headers["Authorization"] == "Bearer access-9"


def test_logout_revokes_and_forgets_the_session(kvctl, logged_in, config_file) -> None:
    result = kvctl(["logout"], lambda r: httpx.Response(204))
    assert result.code == 0, result.err
    assert result.requests[0].url.path == "/api/v1/auth/logout"
    assert result.bodies() == [{"refresh_token": "refresh-1"}]
    assert ConfigStore(config_file).session(URL) is None
    assert result.out == f"logged out alice from {URL}\n"


def test_logout_forgets_the_session_even_when_the_server_refuses(kvctl, logged_in, config_file) -> None:
    result = kvctl(["logout"], lambda r: problem(401, "invalid_token", "Token has expired"))
    assert result.code == 0
    assert "warning: the server did not revoke the session" in result.err
    assert ConfigStore(config_file).session(URL) is None


def test_corrupt_config_file_is_reported_not_a_traceback(kvctl, config_file) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text("{not json")
    result = kvctl(["list"])
    assert result.code == 1
    assert result.err == f"error: config file {config_file} is not valid JSON; fix or delete it\n"


def test_logout_all_ends_every_session_and_forgets_this_one(kvctl, logged_in, config_file) -> None:
    result = kvctl(["logout", "--all"], lambda r: httpx.Response(204))
    assert result.code == 0, result.err
    assert [r.url.path for r in result.requests] == ["/api/v1/auth/logout-all"]
    assert result.requests[0].headers["Authorization"] == "Bearer access-1"
    assert ConfigStore(config_file).session(URL) is None


def test_passwd_sends_the_current_and_the_new_password_and_keeps_the_session(
    kvctl, logged_in, config_file, monkeypatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Secret123\nAnother456\n"))
    result = kvctl(["passwd", "--password-stdin"], lambda r: httpx.Response(204))
    assert result.code == 0, result.err
    assert [r.url.path for r in result.requests] == ["/api/v1/auth/password"]
    assert result.bodies() == [{"current_password": "Secret123", "new_password": "Another456"}]
    assert result.out == f"password of alice on {URL} changed; every other session has ended\n"
    assert ConfigStore(config_file).session(URL) is not None


def test_passwd_reports_a_wrong_current_password(kvctl, logged_in, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Wrong1234\nAnother456\n"))
    result = kvctl(
        ["passwd", "--password-stdin"],
        lambda r: problem(401, "invalid_credentials", "The current password is incorrect"),
    )
    assert result.code == 1
    assert "The current password is incorrect" in result.err


def test_whoami_against_an_unreachable_server_says_so_not_not_logged_in(kvctl, config_file) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = kvctl(["whoami"], refuse)
    assert result.code == 2  # the connection's code, not the 1 of "not logged in"
    assert result.err == f"error: cannot connect to {URL}: [Errno 111] Connection refused\n"
    assert [r.url.path for r in result.requests] == ["/health/live"]  # unauthenticated: no token to send


def test_whoami_not_logged_in_on_a_reachable_server(kvctl, config_file) -> None:
    result = kvctl(["whoami"], lambda r: httpx.Response(200, json={"status": "ok"}))
    assert (result.code, result.err) == (1, f"error: not logged in to {URL}; run: kvctl login\n")
    assert "Authorization" not in result.requests[0].headers


def test_the_session_lock_is_a_filelock_shared_with_other_processes(kvctl, config_file, monkeypatch) -> None:
    store = ConfigStore(config_file)
    store.set_session(URL, Session("alice", "access-1", "refresh-1", time.time() - 5))
    first = kvctl(["token"], lambda r: httpx.Response(200, json=PAIR))  # a refresh, under the lock
    assert (first.code, first.out) == (0, "access-2\n")
    lock_path = config_file.with_name("config.json.lock")
    assert stat.S_IMODE(lock_path.stat().st_mode) == 0o600

    store.set_session(URL, Session("alice", "access-2", "refresh-2", time.time() - 5))
    monkeypatch.setattr("kvctl.config.LOCK_TIMEOUT_SECONDS", 0.3)
    with FileLock(lock_path, thread_local=False):  # another kvctl is refreshing: wait, then give up clearly
        result = kvctl(["token"])
    assert result.code == 1
    assert result.err.startswith(f"error: another kvctl holds the lock {lock_path} for more than 0.3 s")
    assert result.requests == []  # the refresh token was not presented
