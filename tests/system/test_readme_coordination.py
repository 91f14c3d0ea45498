"""README's Coordination example runs as written against a real API: every request succeeds, with the
answers the comments promise."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.support.readme import json_documents, readme_block

pytestmark = pytest.mark.subprocess


def test_the_coordination_example_runs_as_written(redis_server, api_process) -> None:
    data, queue = redis_server("data"), redis_server("queue", appendonly=False)
    api = api_process({"REDIS_URL": data.url, "HUEY_REDIS_URL": queue.url, "SECRET_KEY": "x" * 48})
    body = {"username": "carol", "email": "carol@example.com", "password": "Secret123"}
    token = httpx.post(f"{api.url}/api/v1/auth/register", json=body, timeout=10).json()["access_token"]
    script = f"API={api.url}/api/v1\nTOKEN={token}\n" + readme_block("## Coordination")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answers = json_documents(done.stdout)
    problems = [a for a in answers if "status" in a and "code" in a]
    assert not problems, problems
    increments = [a for a in answers if a.get("key") == "hits" and "value" in a]
    assert [a["value"] for a in increments[:2]] == [5, 6]
    txn = next(a for a in answers if "succeeded" in a)
    assert txn["succeeded"] is True
    assert txn["results"][3]["entry"]["value"] == {"beta": True, "color": "blue"}
    lock = next(a for a in answers if a.get("token") == 1 and "acquired_at" in a)
    assert lock["name"] == "deploy"
    revoked = answers[-1]
    assert revoked["deleted"] == [{"bucket": "default", "key": "workers:node-1"}]
