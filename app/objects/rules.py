"""The rules a request to the object store must follow: bucket and object names, user metadata,
size limits. Shared by the object service and the multipart uploads; no I/O."""

from __future__ import annotations

import json
import re

from app.config import Settings
from app.platform.errors import InvalidInput, PayloadTooLarge

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Names whose tail would route to a sub-resource (/verify, /uploads/...) of a shorter name.
RESERVED_TAIL_RE = re.compile(r"/(verify|uploads(/[^/]+(/complete|/parts/[^/]+)?)?)$")
META_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")


def check_bucket_name(name: str) -> None:
    if not BUCKET_RE.fullmatch(name):
        raise InvalidInput(f"Bucket name {name[:70]!r} must match [a-z0-9][a-z0-9._-]{{0,62}}")


def check_object_name(name: str, max_bytes: int) -> None:
    """Names are 1..max_bytes of UTF-8 without control characters, '.' or '..' segments."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= max_bytes:
        raise InvalidInput(f"Object name must be 1-{max_bytes} bytes of UTF-8, got {size}")
    if CONTROL_RE.search(name):
        raise InvalidInput("Object name must not contain control characters (NUL, newline, ...)")
    if any(segment in (".", "..") for segment in name.split("/")):
        raise InvalidInput("Object name must not contain '.' or '..' path segments")
    if RESERVED_TAIL_RE.search(name):
        raise InvalidInput("Object name must not end in /verify or /uploads[/...] (sub-resource paths)")


def check_length(content_length: int | None, limit: int, what: str = "Object") -> None:
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"{what} of {content_length} bytes exceeds the limit of {limit} bytes")


class ObjectRules:
    """The rules with the limits the settings give."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def check_name(self, name: str) -> None:
        check_object_name(name, self._settings.max_object_name_bytes)

    def check_metadata(self, description: str, metadata: dict[str, str]) -> str:
        """The metadata as stored (JSON), after checking names and the size limit."""
        for meta_name in metadata:
            if not META_NAME_RE.fullmatch(meta_name):
                raise InvalidInput(f"X-Object-Meta-{meta_name[:70]} : names are [a-z0-9_.-], up to 128")
        encoded = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
        limit = self._settings.max_object_metadata_bytes
        if len(description.encode()) + len(encoded.encode()) > limit:
            raise InvalidInput(f"Description and X-Object-Meta-* headers exceed {limit} bytes")
        return encoded

    def limit(self, bucket_max: int) -> int:
        """The size limit of an object in a bucket whose own limit is ``bucket_max`` (0 = none)."""
        return min(self._settings.max_object_bytes, bucket_max or self._settings.max_object_bytes)
