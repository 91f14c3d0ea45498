"""What every command receives: the parsed arguments, the output, the session store and the client."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

import httpx

from kvctl.client import ApiClient, KVPaths
from kvctl.config import ConfigStore
from kvctl.output import Output


@dataclass
class Context:
    args: argparse.Namespace
    out: Output
    store: ConfigStore
    url: str
    transport: httpx.BaseTransport | None = None
    _client: ApiClient | None = field(default=None, repr=False)

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(
                self.url,
                self.store,
                timeout=self.args.timeout,
                transport=self.transport,
                api_key=api_key_of(self.args),
            )
        return self._client

    @property
    def paths(self) -> KVPaths:
        return KVPaths(self.args.bucket)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


API_KEY_ENV = "KVCTL_API_KEY"


def api_key_of(args: argparse.Namespace) -> str | None:
    """--api-key, else $KVCTL_API_KEY, else None (the saved login is used)."""
    key = getattr(args, "api_key", None) or os.environ.get(API_KEY_ENV) or None
    return key.strip() if key else None


def metadata(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry's metadata block (tolerates a server that flattens it into the entry)."""
    meta = entry.get("metadata")
    return meta if isinstance(meta, dict) else entry


def items_of(body: Any, *names: str) -> list[dict[str, Any]]:
    """The list in a response: the body itself, or its first list-valued member among ``names``."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for name in names:
            found = body.get(name)
            if isinstance(found, list):
                return found
    return []


def split_list(values: list[str]) -> list[str]:
    """Repeatable, comma-separated option values as one list, in order, without blanks or repeats."""
    seen: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in seen:
                seen.append(part)
    return seen
