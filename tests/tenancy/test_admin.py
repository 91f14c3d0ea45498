"""The operator's admin script (`python -m app.tenancy.admin`), run as a subprocess against the test's Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.platform.embedded_redis import free_port
from app.platform.keyspace import KeySchema
from app.platform.local_stack import write_run_file
from tests.support.paths import REPO
from tests.support.quotas import assert_quota_problem

pytestmark = [pytest.mark.contract, pytest.mark.subprocess]


def admin(settings, *args: str, cwd: Path = REPO, redis_url: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the admin script in its own process, configured only through the environment."""
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "HUEY_REDIS_URL": settings.huey_redis_url,
        "ENVIRONMENT": "test",
        "SECRET_KEY": settings.secret_key,
    }
    if not redis_url:
        del env["REDIS_URL"]
    return subprocess.run(
        [sys.executable, "-m", "app.tenancy.admin", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_admin(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(admin, settings, *args)


async def test_set_limits_then_reset_through_the_admin_script(alice, settings) -> None:
    done = await run_admin(settings, "set-limits", alice.id, "--max-keys", "2", "--max-buckets", "1")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["tenant_id"] == alice.id
    assert body["limits"]["max_keys"] == 2
    assert body["limits"]["max_buckets"] == 1
    assert body["limits"]["max_kv_bytes"] == settings.quota_max_kv_bytes

    await alice.must_put("a", 1)
    await alice.must_put("b", 2)
    assert_quota_problem(await alice.put("c", 3), 429, "max_keys", 2, 2)
    assert (await alice.create_bucket("one")).status_code == 201
    assert_quota_problem(await alice.create_bucket("two"), 429, "max_buckets", 1, 1)

    done = await run_admin(settings, "set-limits", "alice", "--reset", "max_keys", "max_buckets")
    assert done.returncode == 0, done.stderr
    limits = json.loads(done.stdout)["limits"]
    assert (limits["max_keys"], limits["max_buckets"]) == (settings.quota_max_keys, settings.quota_max_buckets)
    assert (await alice.put("c", 3)).status_code == 201
    assert (await alice.create_bucket("two")).status_code == 201


async def test_usage_and_recount_through_the_admin_script(alice, settings, sync_redis) -> None:
    await alice.must_put("a", "x")
    sync_redis.hset(KeySchema(alice.id).usage(), mapping={"keys": 40, "kv_bytes": 4000})

    shown = await run_admin(settings, "usage", "ALICE")  # a username, case-insensitive
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert (body["tenant_id"], body["keys"], body["kv_bytes"]) == (alice.id, 40, 4000)
    assert set(body["limits"]) == {"max_keys", "max_kv_bytes", "max_object_bytes", "max_buckets", "max_watch_streams"}

    fixed = await run_admin(settings, "recount", alice.id)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["usage"]["keys"] == 1
    usage = await alice.usage()
    assert (usage["keys"], usage["kv_bytes"]) == (1, len("a") + len('"x"'))


async def test_admin_script_refuses_bad_input_without_a_traceback(alice, settings) -> None:
    cases = [
        (("usage", "nobody-here"), 1, "no tenant id or username"),
        (("set-limits", str(uuid.uuid4()), "--max-keys", "5"), 1, "no tenant id or username"),
        (("set-limits", alice.id), 1, "nothing to change"),
        (("set-limits", alice.id, "--max-keys", "-1"), 1, ">= 0"),
        (("set-limits", alice.id, "--reset", "max_bogus"), 2, "invalid choice"),
        (("set-limits", alice.id, "--max-keys", "many"), 2, "invalid int value"),
    ]
    for args, code, message in cases:
        done = await run_admin(settings, *args)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert (await alice.usage())["limits"]["max_keys"] == settings.quota_max_keys


def test_admin_script_reports_an_unreachable_redis() -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    settings = SimpleNamespace(redis_url=nowhere, huey_redis_url=nowhere, secret_key="x" * 40)
    done = admin(settings, "usage", "alice")
    assert done.returncode == 2
    assert "unreachable" in done.stderr
    assert "Traceback" not in done.stderr


async def test_without_redis_url_the_admin_script_uses_the_running_make_runs_redis(alice, settings, tmp_path) -> None:
    # What `make run` leaves in its working directory while it runs (this test process stands in for it).
    write_run_file(
        {"REDIS_URL": settings.redis_url, "HUEY_REDIS_URL": settings.huey_redis_url}, tmp_path / ".data/run.json"
    )
    done = await asyncio.to_thread(admin, settings, "usage", "alice", cwd=tmp_path, redis_url=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tenant_id"] == alice.id
    assert f"data Redis: {settings.redis_url} (the running make run)" in done.stderr


def test_a_run_file_of_a_stopped_make_run_is_ignored(tmp_path) -> None:
    from app.platform.local_stack import remove_run_file, running_stack

    path = tmp_path / ".data/run.json"
    write_run_file({"REDIS_URL": "redis://127.0.0.1:1/0"}, path)
    assert running_stack(path) == {"REDIS_URL": "redis://127.0.0.1:1/0"}
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(json.dumps({"REDIS_URL": "redis://127.0.0.1:1/0", "pid": int(dead.stdout)}))
    assert running_stack(path) is None
    remove_run_file(path)
    assert running_stack(path) is None
