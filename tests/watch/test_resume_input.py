"""Where to resume comes from the client (``since``, ``Last-Event-ID``): anything that is not a revision
as Redis reads one (ASCII digits, at most 2^64-1) is refused before the stream starts, a 422 problem on
SSE and an error message plus close code 4422 on the WebSocket; never a 500 or a dropped socket."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote_from_bytes

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.watch_client import API, Served, Tenant

NOT_REVISIONS = [
    "²".encode(),  # str.isdigit() is True, int() fails
    "\u0661".encode(),  # an Arabic-Indic one: int() takes it, Redis does not
    "\u0661-0".encode(),
    b"1" * 5000,  # more digits than int() converts
    b"\xed\xa0\x80",  # a lone surrogate (CESU/WTF-8)
    b"99999999999999999999",
    b"18446744073709551616",  # 2^64
    b"-1",
    b"+1",
    b"1_000",
    b"1e3",
    b"0x10",
]
IDS = [v[:12].decode("utf-8", "replace") for v in NOT_REVISIONS]


def header_value(raw: bytes) -> str:
    return raw.decode("latin-1")  # what reaches the server is these bytes


async def read_body(served: Served, path: str, headers: dict[str, str | bytes]) -> tuple[int, str, bytes]:
    """Status, content type and the start of the body (a 200 is an endless stream)."""
    async with (
        httpx.AsyncClient(base_url=served.url, timeout=5) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if response.status_code == 200 or len(body) > 4096:
                break
        return response.status_code, response.headers.get("content-type", ""), body


@pytest.mark.parametrize("raw", NOT_REVISIONS, ids=IDS)
async def test_sse_last_event_id_that_is_not_a_revision_is_a_422_problem(served: Served, alice: Tenant, raw) -> None:
    status, content_type, body = await read_body(served, f"{API}/kv/watch", {**alice.headers, "Last-Event-ID": raw})
    assert (status, content_type) == (422, "application/problem+json"), body[:300]
    problem = json.loads(body)
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["field"] == "header.Last-Event-ID"


@pytest.mark.parametrize(
    "raw", [*NOT_REVISIONS, b"1\x00", b" 1", b"", b"1 "], ids=[*IDS, "nul", "space1", "empty", "1space"]
)
async def test_sse_since_that_is_not_a_revision_is_a_422_problem(served: Served, alice: Tenant, raw) -> None:
    status, content_type, body = await read_body(served, f"{API}/kv/watch?since={quote_from_bytes(raw)}", alice.headers)
    assert (status, content_type) == (422, "application/problem+json"), body[:300]
    assert json.loads(body)["errors"][0]["field"].endswith("since")


async def test_sse_nul_in_last_event_id_is_refused_by_the_http_server(served: Served, alice: Tenant) -> None:
    host, port = served.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET {API}/kv/watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice.token}\r\n".encode()
        + b"Last-Event-ID: 1\x00\r\n\r\n"
    )
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.split()[1] == b"400"


async def test_the_largest_revision_is_a_revision(served: Served, alice: Tenant) -> None:
    largest = str(2**64 - 1)
    cases: list[tuple[str, dict[str, str | bytes]]] = [
        (f"{API}/kv/watch", {**alice.headers, "Last-Event-ID": largest}),
        (f"{API}/kv/watch?since={largest}", alice.headers),
        (f"{API}/kv/watch?since=00000000000000000007", alice.headers),
    ]
    for path, headers in cases:
        status, _, body = await read_body(served, path, headers)
        assert status == 200, body
        assert b"(snapshot)" in body  # beyond the bucket's revision: a snapshot, then live


async def refused(url: str, headers: dict[str, str]) -> tuple[dict, int | None]:
    async with connect(url, additional_headers=headers) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    return message, ws.close_code


@pytest.mark.parametrize("raw", NOT_REVISIONS, ids=IDS)
async def test_socket_resume_that_is_not_a_revision_closes_with_4422(served: Served, alice: Tenant, raw) -> None:
    url = f"{served.ws_url}{API}/kv/watch/default"
    message, code = await refused(url, {**alice.headers, "Last-Event-ID": header_value(raw)})
    assert (message["event"], message["data"]["code"], message["data"]["status"], code) == (
        "error",
        "validation_error",
        422,
        4422,
    )
    assert message["data"]["errors"][0]["field"] == "header.Last-Event-ID"

    message, code = await refused(f"{url}?since={quote_from_bytes(raw)}", alice.headers)
    assert (message["data"]["code"], message["data"]["errors"][0]["field"], code) == ("validation_error", "since", 4422)


async def test_an_unexpected_error_before_a_socket_stream_is_an_error_message_and_4500(
    served: Served, alice: Tenant, monkeypatch
) -> None:
    async def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(served.app.state.watch, "open", broken)
    message, code = await refused(f"{served.ws_url}{API}/kv/watch/default", alice.headers)
    assert (message["data"]["code"], message["data"]["status"], code) == ("internal_error", 500, 4500)
