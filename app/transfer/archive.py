"""The archive format (version 1), written and read as a stream: a POSIX ustar file whose members are

- ``kvstore-export.json``: ``{"format": "kvstore-export", "version": 1, "exported_at_ms", "options"}``;
- ``kv/buckets.ndjson``: one KV bucket per line (name, description, history, ttl, max_value_size);
- ``kv/keys-NNNNNN.ndjson``: keys, one per line (bucket, key, value, encoding, expires_at_ms, tags,
  version, and ``history`` (older revisions' puts, oldest first) when exported with history);
  a member holds at most ``KEYS_PER_MEMBER`` keys and about ``MEMBER_BYTES`` bytes;
- ``objects/buckets.ndjson``: object buckets (name, description, chunk_size, max_object_size);
- ``objects/NNNNNN.json`` then ``objects/NNNNNN.bin``: an object's metadata, then its bytes;
- ``manifest.json``, last: counts and every other member's size and SHA-256.

No I/O here: the writer turns members into bytes, the reader takes an async iterator of bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import AsyncIterator
from typing import Any

BLOCK = 512
KEYS_PER_MEMBER = 1000
MEMBER_BYTES = 4 * 1024 * 1024
MAX_SMALL_MEMBER = 64 * 1024 * 1024  # a JSON/NDJSON member the reader accepts (a writer makes <= ~5 MiB)
HEADER = "kvstore-export.json"
MANIFEST = "manifest.json"
MEMBER_RE = re.compile(
    r"^(kvstore-export\.json|manifest\.json|kv/buckets\.ndjson|kv/keys-\d{6,}\.ndjson"
    r"|objects/buckets\.ndjson|objects/\d{6,}\.(json|bin))$"
)


class ArchiveError(Exception):
    """The archive is not a valid kvstore export (the import fails with this message)."""


def header_block(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def end_of_archive() -> bytes:
    return b"\0" * (2 * BLOCK)


def json_line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class Hashing:
    """SHA-256 and size of each member written, for the manifest."""

    def __init__(self) -> None:
        self.members: list[dict[str, Any]] = []

    def add(self, name: str, size: int, sha256: str) -> None:
        self.members.append({"name": name, "size": size, "sha256": sha256})


def small_member(name: str, data: bytes, mtime: int, sums: Hashing) -> bytes:
    """A whole member (header, data, padding) for data held in memory."""
    sums.add(name, len(data), hashlib.sha256(data).hexdigest())
    return header_block(name, len(data), mtime) + data + padding(len(data))


class ByteReader:
    """Exact reads over an async iterator of byte pieces."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._buffer = bytearray()
        self._done = False

    async def _fill(self, n: int) -> None:
        while len(self._buffer) < n and not self._done:
            try:
                self._buffer += await anext(self._source)
            except StopAsyncIteration:
                self._done = True

    async def read_exact(self, n: int) -> bytes:
        await self._fill(n)
        if len(self._buffer) < n:
            raise ArchiveError("the archive ends in the middle of a member")
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def pieces(self, n: int, piece: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """``n`` bytes as pieces of at most ``piece`` bytes."""
        left = n
        while left:
            await self._fill(1)
            if not self._buffer:
                raise ArchiveError("the archive ends in the middle of a member")
            take = min(left, piece, len(self._buffer))
            data = bytes(self._buffer[:take])
            del self._buffer[:take]
            left -= take
            yield data


class Member:
    def __init__(self, index: int, name: str, size: int, reader: ByteReader) -> None:
        self.index = index
        self.name = name
        self.size = size
        self._reader = reader
        self.sha256 = hashlib.sha256()
        self.consumed = False

    async def pieces(self) -> AsyncIterator[bytes]:
        """The member's bytes (once), hashed as they pass."""
        if self.consumed:
            raise ArchiveError(f"member {self.name} read twice")
        self.consumed = True
        async for piece in self._reader.pieces(self.size):
            self.sha256.update(piece)
            yield piece
        await self._reader.read_exact(-self.size % BLOCK)

    async def read_all(self) -> bytes:
        if self.size > MAX_SMALL_MEMBER:
            raise ArchiveError(f"member {self.name} is {self.size} bytes; at most {MAX_SMALL_MEMBER} expected")
        return b"".join([piece async for piece in self.pieces()])

    async def skip(self) -> None:
        async for _ in self.pieces():
            pass


async def members(source: AsyncIterator[bytes]) -> AsyncIterator[Member]:
    """The members of a ustar archive, in order; each must be read or skipped before the next."""
    reader = ByteReader(source)
    index = 0
    previous: Member | None = None
    while True:
        if previous is not None and not previous.consumed:
            await previous.skip()
        block = await reader.read_exact(BLOCK)
        if block == b"\0" * BLOCK:
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError) as exc:
            raise ArchiveError(f"member {index + 1}: not a tar header ({exc})") from exc
        if not info.isfile() or not MEMBER_RE.fullmatch(info.name):
            raise ArchiveError(f"member {index + 1}: unexpected entry {info.name[:80]!r}")
        index += 1
        previous = Member(index, info.name, info.size, reader)
        yield previous


def parse_json(member_name: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{member_name}: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ArchiveError(f"{member_name}: not a JSON object")
    return value


def parse_lines(member_name: str, data: bytes) -> list[dict[str, Any]]:
    return [
        parse_json(f"{member_name} line {number}", line) for number, line in enumerate(data.splitlines(), 1) if line
    ]
