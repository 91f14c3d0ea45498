"""Presigned object URLs as the tests use them: asking for one, and changing one (a tampered query)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from tests.support.objects import BUCKET, object_url


def presign_path(name: str, bucket: str = BUCKET) -> str:
    return object_url(name, bucket) + "/presign"


async def presign(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, bucket: str = BUCKET, **body: Any
) -> httpx.Response:
    return await client.post(presign_path(name, bucket), json={"method": "GET", **body}, headers=headers)


async def presigned_url(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, bucket: str = BUCKET, **body: Any
) -> str:
    """The URL POST .../presign answered (absolute, on the client's base URL)."""
    response = await presign(client, headers, name, bucket, **body)
    assert response.status_code == 200, response.text
    return str(response.json()["url"])


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def with_query(url: str, **changes: str | None) -> str:
    """``url`` with query parameters replaced (a value of None drops the parameter)."""
    parts = urlsplit(url)
    params = {**query(url), **changes}
    kept = {name: value for name, value in params.items() if value is not None}
    return urlunsplit(parts._replace(query=urlencode(kept)))


def raw_query(url: str, extra: str) -> str:
    """``url`` with ``extra`` (already percent-encoded) appended to its query as it is."""
    return f"{url}&{extra}"


def with_path(url: str, path: str) -> str:
    """The query of ``url`` on another object's path."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=path))
