"""The object store's domain: buckets, objects and the segments naming their content, multipart
uploads and their parts. Plain dataclasses, no I/O: the store returns them, the services and the
HTTP schemas read them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

MIN_CHUNK_SIZE = 65_536
MAX_CHUNK_SIZE = 8_388_608


def new_upload_id() -> str:
    """A fresh upload id: content is written under an id that is never reused (KeySchema.chunk)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of content: ``size`` bytes in ``chunks`` chunks of one upload id."""

    upload_id: str
    size: int
    chunks: int


@dataclass(slots=True)
class ObjectBucket:
    name: str
    description: str
    chunk_size: int
    max_object_size: int | None
    created_ms: int
    objects: int = 0
    bytes: int = 0


@dataclass(slots=True)
class StoredObject:
    """An object's metadata as read at one instant; its segments stay readable for the grace period."""

    bucket: str
    name: str
    size: int
    sha256: str
    chunks: int
    chunk_size: int
    content_type: str
    description: str
    metadata: dict[str, str]
    version: int
    created_ms: int
    updated_ms: int
    segments: list[Segment] = field(default_factory=list)
    created: bool = False
    verified_ms: int = 0  # when GET .../verify last hashed these chunks and found them valid (0: never)

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'


@dataclass(slots=True)
class ListedObject:
    name: str
    size: int
    sha256: str
    content_type: str
    updated_ms: int


@dataclass(slots=True)
class ObjectPage:
    items: list[ListedObject]
    next_cursor: str | None


@dataclass(slots=True)
class Verification:
    name: str
    valid: bool
    expected: str
    actual: str | None
    size: int
    missing_chunks: int
    hashed_ms: int = 0  # when the bytes were hashed (now, or a remembered earlier verification)


@dataclass(slots=True)
class Part:
    part_number: int
    size: int
    sha256: str
    segment: Segment  # where its bytes are


@dataclass(slots=True)
class MultipartUpload:
    upload_id: str
    bucket: str
    name: str
    created_ms: int
    expires_ms: int
    chunk_size: int
    max_object_size: int
    content_type: str
    description: str
    metadata: dict[str, str]
    parts: list[Part] = field(default_factory=list)
