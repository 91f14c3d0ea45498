"""The content layout: which chunk reads make up a byte range, and transfers in pieces smaller
than a chunk (large chunk sizes never make the API hold a whole chunk)."""

from __future__ import annotations

import hashlib

import pytest

import app.objects.content as content_module
from app.objects.content import plan_reads
from app.objects.model import Segment
from app.objects.store import parse_segments
from tests.support.objects import API, object_url, payload


def materialise(segments: list[Segment], chunk_size: int) -> tuple[dict[tuple[str, int], bytes], bytes]:
    """Chunks of made-up content laid out as the segments say, and the whole content."""
    chunks, whole = {}, b""
    for n, segment in enumerate(segments):
        data = payload(segment.size, seed=n)
        whole += data
        for index in range(segment.chunks):
            chunks[(segment.upload_id, index)] = data[index * chunk_size : (index + 1) * chunk_size]
    return chunks, whole


def read(chunks: dict[tuple[str, int], bytes], segments: list[Segment], chunk_size: int, start: int, end: int, unit):
    out = b""
    for r in plan_reads(segments, chunk_size, start, end, unit):
        chunk = chunks[(r.upload_id, r.index)]
        assert r.full == (r.start == 0 and r.end == len(chunk) - 1 and len(chunk) <= unit)
        assert r.length <= unit
        out += chunk[r.start : r.end + 1]
    return out


def test_segments_parse() -> None:
    assert parse_segments(b"") == []
    assert parse_segments(b"a:10:1,b:0:0") == [Segment("a", 10, 1), Segment("b", 0, 0)]


@pytest.mark.parametrize("unit", [7, 10, 64, 1000])
def test_every_range_of_uneven_segments_reads_exactly_its_bytes(unit: int) -> None:
    chunk_size = 10
    segments = [Segment("a", 25, 3), Segment("b", 10, 1), Segment("c", 1, 1), Segment("d", 14, 2)]
    chunks, whole = materialise(segments, chunk_size)
    for start in range(len(whole)):
        for end in range(start, len(whole)):
            assert read(chunks, segments, chunk_size, start, end, unit) == whole[start : end + 1], (start, end)


async def test_transfers_in_pieces_smaller_than_a_chunk(client, tenant, monkeypatch) -> None:
    """A 20 000-byte I/O unit against 65 536-byte chunks: pieces straddle nothing, APPENDs build
    each chunk, reads split chunks; the bytes and the chunk count stay the same."""
    monkeypatch.setattr(content_module, "IO_UNIT", 20_000)
    await client.post(f"{API}/buckets", json={"name": "files", "chunk_size": 65_536}, headers=tenant["headers"])
    data = payload(5 * 65_536 + 123)
    body = (await client.put(object_url("big"), content=data, headers=tenant["headers"])).json()
    assert body["chunks"] == 6
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (await client.get(object_url("big"), headers=tenant["headers"])).content == data
    ranged = await client.get(object_url("big"), headers={**tenant["headers"], "Range": "bytes=65000-200000"})
    assert ranged.content == data[65000:200001]
    assert (await client.get(object_url("big") + "/verify", headers=tenant["headers"])).json()["valid"] is True
