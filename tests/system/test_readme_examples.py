"""README's Authentication example runs as written against a real API: every step succeeds and the
sessions it ends are ended; so does the presigned-URL example of Objects."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest

from tests.support.paths import REPO
from tests.support.readme import json_documents, readme_block

pytestmark = pytest.mark.subprocess


def test_the_authentication_example_runs_as_written(redis_server, api_process) -> None:
    data, queue = redis_server("data"), redis_server("queue", appendonly=False)
    api = api_process({"REDIS_URL": data.url, "HUEY_REDIS_URL": queue.url, "SECRET_KEY": "x" * 48})
    script = readme_block("## Authentication").replace("http://127.0.0.1:8000", api.url)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + '\necho "LAST=$TOKEN"\n'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed, _, last = done.stdout.rpartition("LAST=")
    answers = json_documents(printed)
    # The registration and /auth/me; nothing from the 204s (a refusal would print its problem).
    assert [sorted(answer) for answer in answers] == [
        ["access_token", "expires_in", "refresh_token", "tenant_id", "token_type"],
        ["created_at", "email", "is_active", "tenant_id", "username"],
    ], printed
    last = last.strip()
    me = httpx.get(f"{api.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {last}"}, timeout=5)
    assert me.status_code == 401  # logout-all ended the session of the last login too
    login = httpx.post(f"{api.url}/api/v1/auth/login", json={"username": "alice", "password": "Another456"}, timeout=5)
    assert login.status_code == 200  # the password change took


def test_the_presigned_url_example_runs_as_written(redis_server, api_process, tmp_path) -> None:
    """The Objects section's presigned-URL block, after a login and the photo of the block above it."""
    data, queue = redis_server("data"), redis_server("queue", appendonly=False)
    api = api_process({"REDIS_URL": data.url, "HUEY_REDIS_URL": queue.url, "SECRET_KEY": "x" * 48}).url
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n**Presigned URLs**") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block
    register = httpx.post(
        f"{api}/api/v1/auth/register",
        json={"username": "alice", "email": "alice@example.com", "password": "Secret123"},
        timeout=10,
    )
    headers = {"Authorization": f"Bearer {register.json()['access_token']}"}
    objects = f"{api}/api/v1/objects/buckets"
    assert httpx.post(objects, json={"name": "photos"}, headers=headers, timeout=10).status_code == 201
    photo, cat = b"\xff\xd8 a photo" * 300, b"\x89PNG a cat" * 300
    put = httpx.put(f"{objects}/photos/objects/2024/beach.jpg", content=photo, headers=headers, timeout=10)
    assert put.status_code == 201
    (tmp_path / "cat.png").write_bytes(cat)
    preamble = (
        f'API={api}/api/v1\nH="Authorization: {headers["Authorization"]}"\nO=$API/objects/buckets/photos/objects\n'
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", preamble + block.group(1)],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "beach.jpg").read_bytes() == photo  # the presigned GET, no token
    assert done.stdout.startswith(photo[:1024])  # the Range request
    stored = httpx.get(f"{objects}/photos/objects/upload/cat.png", headers=headers, timeout=10)
    assert (stored.content, stored.headers["content-type"]) == (cat, "image/png")  # the presigned PUT


def test_the_api_keys_example_runs_as_written(redis_server, api_process) -> None:
    """The API keys example, after the Authentication one (it logs in as the user that one leaves)."""
    data, queue = redis_server("data"), redis_server("queue", appendonly=False)
    api = api_process({"REDIS_URL": data.url, "HUEY_REDIS_URL": queue.url, "SECRET_KEY": "x" * 48})
    script = (readme_block("## Authentication") + readme_block("### API keys")).replace(
        "http://127.0.0.1:8000", api.url
    )
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert '"items":[{"id":' in out and '"kvs_' not in out.split('"items":')[1].split("HTTP/1.1")[0]
    assert '"code":"key_not_found"' in out  # the key may read app:mode (absent)
    assert "HTTP/1.1 403" in out
    assert 'www-authenticate: Bearer error="insufficient_scope", scope="kv:write"' in out
    assert out.rstrip().endswith("}") and '"status":401' in out.rsplit("\n", 1)[-1]  # revoked: refused
