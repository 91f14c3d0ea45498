"""Fakes for the kvctl unit tests: problem+json answers, entries and the result of one run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

URL = "http://kv.test"


def problem(status: int, code: str, detail: str) -> httpx.Response:
    body = {"type": f"/problems/{code}", "title": "x", "status": status, "detail": detail, "code": code}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def entry(key: str, value: Any, version: int = 1, revision: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "key": key,
        "value": value,
        "encoding": meta.pop("encoding", None),
        "metadata": {
            "version": version,
            "revision": revision,
            "ttl": meta.get("ttl"),
            "tags": meta.get("tags", {}),
            "created_at": "2025-01-01T00:00:00.000Z",
            "updated_at": "2025-01-01T00:00:00.000Z",
            "expires_at": None,
        },
    }


@dataclass
class Result:
    code: int
    out: str
    err: str
    requests: list[httpx.Request] = field(default_factory=list)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]
