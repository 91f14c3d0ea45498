"""kvctl end to end: `python -m kvctl` subprocesses against the API served by uvicorn on a real socket,
backed by the test suite's redis-server processes."""

from __future__ import annotations

import json
import signal
import stat
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from app.platform.embedded_redis import free_port
from tests.support.api_process import ApiProcess
from tests.support.kvctl_process import Kvctl, LiveProcess, registered
from tests.support.tcp_proxy import TcpProxy
from tests.support.tenants import PASSWORD, SECRET_KEY

pytestmark = pytest.mark.subprocess


def new_username() -> str:
    return f"cli{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kvctl(api: ApiProcess, tmp_path: Path) -> Kvctl:
    """A kvctl with a freshly registered (and so logged-in) user of its own."""
    return registered(api.url, tmp_path / "kvctl" / "config.json", new_username())


def test_register_logout_login_whoami(api: ApiProcess, tmp_path: Path) -> None:
    config = tmp_path / "home" / "config.json"
    cli = Kvctl(api.url, config)
    name = new_username()
    registered = cli("--json", "register", "-u", name, "-e", f"{name}@example.com")
    assert registered.code == 0, registered.err
    tenant_id = json.loads(registered.out)["tenant_id"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert cli("whoami").out == f"{name} <{name}@example.com> tenant {tenant_id} on {api.url}\n"

    assert cli("logout").out == f"logged out {name} from {api.url}\n"
    after = cli("whoami")
    assert (after.code, after.err) == (1, f"error: not logged in to {api.url}; run: kvctl login\n")

    wrong = cli("login", "-u", name, "--password-stdin", stdin="Wrong1234\n")
    assert wrong.code == 1
    assert "(invalid_credentials, HTTP 401)" in wrong.err
    assert cli("login", "-u", name, "--password-stdin", stdin=f"{PASSWORD}\n").code == 0
    assert json.loads(cli("whoami", "--json").out)["username"] == name


def test_put_get_list_history_delete(kvctl: Kvctl, tmp_path: Path) -> None:
    first = kvctl("--json", "put", "app:cfg", '{"mode": "a"}', "--tag", "env=prod", "--ttl", "600")
    assert first.code == 0, first.err
    first_revision = json.loads(first.out)["metadata"]["revision"]
    second = kvctl("put", "app:cfg", '{"mode": "b"}', "--if-match", "1")
    assert second.out.startswith("OK app:cfg version 2 revision ")
    conflict = kvctl("put", "app:cfg", '{"mode": "c"}', "--if-match", "1")
    assert conflict.code == 1
    assert conflict.err.startswith("error: ") and "HTTP 412)" in conflict.err
    assert "Traceback" not in conflict.err

    assert json.loads(kvctl("get", "app:cfg").out) == {"mode": "b"}
    entry = json.loads(kvctl("get", "app:cfg", "--json").out)
    assert entry["metadata"]["version"] == 2
    assert entry["metadata"]["tags"] == {"env": "prod"}  # an omitted tags keeps them
    assert 0 < entry["metadata"]["ttl"] <= 600
    assert json.loads(kvctl("get", "app:cfg", "--revision", str(first_revision)).out) == {"mode": "a"}

    assert kvctl("put", "app:note", "hello world").code == 0
    assert kvctl("get", "app:note").out == "hello world\n"
    assert kvctl("list", "--prefix", "app:", "-q").out == "app:cfg\napp:note\n"
    assert kvctl("all", "--tag", "env:prod", "-q").out == "app:cfg\n"
    table = kvctl("list").out.splitlines()
    assert table[0].split() == ["KEY", "VERSION", "TTL", "TAGS", "VALUE"]
    assert table[1].split()[:2] == ["app:cfg", "2"]

    history = json.loads(kvctl("history", "app:cfg", "--json").out)
    assert [item["version"] for item in history["items"]] == [2, 1]
    assert kvctl("history", "app:cfg").out.splitlines()[1].split()[1:3] == ["2", "put"]

    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    assert kvctl("put", "app:blob", "--file", str(blob), "--base64").code == 0
    copy = tmp_path / "copy.bin"
    assert kvctl("get", "app:blob", "-o", str(copy)).code == 0
    assert copy.read_bytes() == blob.read_bytes()

    assert kvctl("delete", "app:cfg").out == "deleted app:cfg\n"
    gone = kvctl("get", "app:cfg")
    assert gone.code == 1
    assert gone.err.startswith("error: ") and "(key_not_found, HTTP 404)" in gone.err


def test_populate_then_list_every_page(kvctl: Kvctl) -> None:
    run = kvctl("populate", "2500", "--prefix", "load:")
    assert run.code == 0, run.err
    assert run.out.startswith("wrote 2500 keys load:000000..load:002499 in ")
    listed = json.loads(kvctl("list", "--prefix", "load:", "--all-pages", "--json").out)
    keys = [item["key"] for item in listed["items"]]
    assert keys == [f"load:{i:06d}" for i in range(2500)]
    assert listed["items"][7]["value"] == {"index": 7, "name": "sample 7", "even": False}
    page = kvctl("list", "--prefix", "load:", "--limit", "10", "-q")
    assert len(page.out.splitlines()) == 10
    assert "more with --all-pages or --cursor " in page.err
    assert kvctl("list", "--tag", "group:g3", "--all-pages", "-q").out.count("\n") == 250


def test_buckets_and_bucket_scoped_keys(kvctl: Kvctl) -> None:
    assert kvctl("buckets", "create", "cfg", "--history", "3", "--description", "settings").code == 0
    assert kvctl("--bucket", "cfg", "put", "a", "1").code == 0
    assert kvctl("get", "a", "--bucket", "cfg").out == "1\n"
    assert kvctl("get", "a").code == 1  # the default bucket is another namespace
    assert kvctl("--bucket", "cfg", "populate", "5", "--prefix", "p").code == 0
    buckets = {b["name"]: b for b in json.loads(kvctl("buckets", "--json").out)["items"]}
    assert buckets["cfg"]["keys"] == 6
    assert buckets["cfg"]["history"] == 3
    assert kvctl("buckets", "delete", "cfg", "--yes").out == "deleted bucket cfg\n"
    missing = kvctl("--bucket", "cfg", "get", "a")
    assert missing.code == 1
    assert "HTTP 404)" in missing.err


def test_expired_access_token_is_refreshed_transparently(kvctl: Kvctl, tmp_path: Path) -> None:
    config_path = tmp_path / "kvctl" / "config.json"
    config = json.loads(config_path.read_text())
    server = next(iter(config["servers"].values()))
    old_refresh = server["refresh_token"]
    now = int(time.time())
    claims = {"sub": server["tenant_id"], "usr": server["username"], "type": "access", "iat": now - 120,
              "exp": now - 60, "jti": uuid.uuid4().hex}  # fmt: skip
    server["access_token"] = jwt.encode(claims, SECRET_KEY, algorithm="HS256")  # expired, the client does not know
    config_path.write_text(json.dumps(config))

    run = kvctl("whoami")
    assert run.code == 0, run.err
    saved = next(iter(json.loads(config_path.read_text())["servers"].values()))
    assert saved["refresh_token"] != old_refresh
    assert (
        httpx.get(
            f"{kvctl.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {saved['access_token']}"}
        ).status_code
        == 200
    )


def test_unreachable_server_exits_2(tmp_path: Path) -> None:
    cli = Kvctl(f"http://127.0.0.1:{free_port()}", tmp_path / "config.json")
    run = cli("login", "-u", "nobody")
    assert run.code == 2
    assert run.err.startswith("error: cannot connect to http://127.0.0.1:")
    assert "Traceback" not in run.err
    whoami = cli("whoami")  # no session either: the server's absence is what the user must hear
    assert whoami.code == 2
    assert whoami.err.startswith("error: cannot connect to http://127.0.0.1:")


def wait_until_watching(kvctl: Kvctl, watcher: LiveProcess) -> str:
    """Write a marker key until the watch prints it: proof that the stream is connected."""
    for attempt in range(40):
        assert kvctl("put", "w:marker", str(attempt)).code == 0
        try:
            return watcher.next_line(timeout=0.5)
        except AssertionError:
            if watcher.process.poll() is not None:
                raise
    raise AssertionError(f"watch printed nothing; stderr: {watcher.stderr}")


def next_change(watcher: LiveProcess) -> str:
    """The next printed event that is not a marker write."""
    while True:
        line = watcher.next_line()
        if " w:marker" not in line:
            return line


def test_watch_prints_changes_and_resumes_after_a_dropped_connection(
    api: ApiProcess, kvctl: Kvctl, tmp_path: Path
) -> None:
    proxy = TcpProxy(api.port)
    through_proxy = Kvctl(proxy.url, tmp_path / "watcher.json")
    assert through_proxy("login", "-u", kvctl.username).code == 0
    watcher = through_proxy.start("watch", "--prefix", "w:")
    try:
        wait_until_watching(kvctl, watcher)
        assert kvctl("put", "other:x", "1").code == 0  # filtered out by --prefix
        assert kvctl("put", "w:a", '{"n": 1}', "--tag", "t=1").code == 0
        assert kvctl("delete", "w:a").code == 0
        put_line, delete_line = next_change(watcher), next_change(watcher)
        put_revision, put_event, put_key = put_line.split()[:3]
        assert (put_event, put_key) == ("put", "w:a")
        assert '= {"n":1}' in put_line and "version 1" in put_line and "tags t=1" in put_line
        assert delete_line.split()[:3] == [str(int(put_revision) + 1), "delete", "w:a"]

        # The connection breaks and the server is unreachable while two more changes happen.
        proxy.pause()
        proxy.drop()
        assert kvctl("put", "w:b", "2").code == 0
        assert kvctl("put", "w:c", "3").code == 0
        time.sleep(1)  # let the watcher meet the closed door at least once
        proxy.resume()
        resumed = [next_change(watcher), next_change(watcher)]
        assert [line.split()[1:3] for line in resumed] == [["put", "w:b"], ["put", "w:c"]]
        assert any("reconnecting in" in line for line in watcher.stderr)

        watcher.process.send_signal(signal.SIGINT)
        assert watcher.process.wait(10) == 130  # Ctrl-C ends a watch cleanly, with the shell's code
        assert not any("Traceback" in (line or "") for line in watcher.stderr)
    finally:
        watcher.stop()
        proxy.close()

    # A later watch replays the changes after a revision and stops after --count events.
    since = str(int(put_revision) - 1)
    replay = kvctl("--json", "watch", "--prefix", "w:", "--since", since, "--count", "2", timeout=30)
    assert replay.code == 0, replay.err
    events = [json.loads(line) for line in replay.out.splitlines()]
    assert [(e["event"], e["data"]["key"]) for e in events] == [("put", "w:a"), ("delete", "w:a")]


def test_api_keys_create_use_and_revoke(kvctl: Kvctl) -> None:
    assert kvctl("put", "app:a", "1").code == 0
    assert kvctl("put", "other", "2").code == 0
    created = kvctl("api-keys", "create", "ci", "--scope", "kv:read", "--key-prefix", "app:")
    assert created.code == 0, created.err
    key = created.out.strip()
    assert key.startswith("kvs_")
    reader = Kvctl(kvctl.url, Path(kvctl.env["KVCTL_CONFIG"]).with_name("empty.json"))  # no login at all
    reader.env["KVCTL_API_KEY"] = key
    assert reader("get", "app:a").out == "1\n"
    assert reader("list", "-q").out == "app:a\n"
    refused = reader("put", "app:a", "3")
    assert refused.code == 1 and "insufficient_scope" in refused.err
    [listed] = json.loads(kvctl("api-keys", "list", "--json").out)["items"]
    assert "key" not in listed and listed["key_prefix"] == "app:"
    assert kvctl("api-keys", "revoke", listed["id"]).code == 0
    gone = reader("get", "app:a")
    assert gone.code == 1 and "revoked" in gone.err
