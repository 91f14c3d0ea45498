"""README's Coordination example runs as written against a real API: every request succeeds, with the
answers the comments promise."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.subprocess


def json_documents(text: str) -> list[dict]:
    """The JSON documents printed one after the other (curl adds no newline)."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    text = text.strip()
    while position < len(text):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


def coordination_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Coordination\n") :]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert match
    return match.group(1)


def test_the_coordination_example_runs_as_written(redis_server, api_process) -> None:
    data, queue = redis_server("data"), redis_server("queue", appendonly=False)
    api = api_process({"REDIS_URL": data.url, "HUEY_REDIS_URL": queue.url, "SECRET_KEY": "x" * 48})
    body = {"username": "carol", "email": "carol@example.com", "password": "Secret123"}
    token = httpx.post(f"{api.url}/api/v1/auth/register", json=body, timeout=10).json()["access_token"]
    script = f"API={api.url}/api/v1\nTOKEN={token}\n" + coordination_block()
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
