"""KV request bodies, response models (for the docs; entries are rendered by StoredEntry.render) and the
encoding of a request's value into the JSON text that is stored."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.kv.rules import check_json_depth, json_text
from app.platform.jsonutil import Timestamp

TAG_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
SURROGATE_RE = re.compile("[\ud800-\udfff]")  # a lone surrogate from a JSON escape: no UTF-8 for it
MAX_TTL_SECONDS = 10 * 365 * 86400


def _tags(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    for name, tag_value in value.items():
        if not TAG_NAME_RE.fullmatch(name):
            raise ValueError(f"tag name {name[:70]!r} must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
        if not tag_value or CONTROL_RE.search(tag_value) or SURROGATE_RE.search(tag_value):
            raise ValueError(f"tag {name!r} needs a non-empty value of Unicode text without control characters")
    return value


Tags = Annotated[dict[str, Annotated[str, Field(max_length=256)]] | None, AfterValidator(_tags)]
Ttl = Annotated[int | None, Field(ge=0, le=MAX_TTL_SECONDS, description="Seconds; 0 removes the expiry")]
Encoding = Literal["base64"] | None


class _ValueBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    value: Any = Field(description="Any JSON value; with encoding=base64, a base64 string of bytes")
    encoding: Encoding = None
    # The earlier Quarkus store's form of `encoding` (README "Coming from ..."): true = base64.
    base64: bool | None = Field(default=None, description='true is encoding="base64"; false is no encoding')
    ttl: Ttl = None
    tags: Tags = None

    @model_validator(mode="after")
    def _base64_flag(self) -> _ValueBody:
        if self.base64 is not None:
            if self.encoding is not None and (self.encoding == "base64") != self.base64:
                raise ValueError(f"base64={str(self.base64).lower()} contradicts encoding={self.encoding!r}")
            self.encoding = "base64" if self.base64 else None
        return self


class KVCreate(_ValueBody):
    key: str = Field(min_length=1, max_length=1024)


class KVPut(_ValueBody):
    lease: str | None = Field(
        default=None, min_length=1, max_length=64, description="Attach the key to this lease (it expires with it)"
    )

    @model_validator(mode="after")
    def _lease_or_ttl(self) -> KVPut:
        if self.lease is not None and self.ttl is not None:
            raise ValueError("a key attached to a lease expires with it: give lease or ttl, not both")
        return self


class BatchItem(KVCreate):
    pass


class BatchPut(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    # Items are validated one by one by the route, so an error names the item's index.
    items: list[Any] = Field(min_length=1, description="Each {key, value, encoding?, ttl?, tags?}")


class BatchKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    keys: list[str] = Field(min_length=1)


class BucketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=1024)
    history: int | None = Field(default=None, ge=1, description="Revisions kept per key (default 10, max 1000)")
    ttl: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TTL_SECONDS,
        description="Default ttl (s) of new keys; 0 = none (omitted: DEFAULT_TTL)",
    )
    max_value_size: int = Field(default=0, ge=0, description="Bytes; 0 = the service limit")
    search: bool = Field(default=False, description="Index the bucket for full-text search (GET /kv/search)")


class Metadata(BaseModel):
    version: int
    revision: int
    ttl: int | None
    tags: dict[str, str]
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp | None


class Entry(BaseModel):
    key: str
    value: Any
    encoding: Encoding = None
    metadata: Metadata


class EntryKey(BaseModel):
    """An entry listed with `values=false`: its key and metadata, without the value."""

    key: str
    encoding: Encoding = None
    metadata: Metadata


class EntryPage(BaseModel):
    items: list[Entry] | list[EntryKey] = Field(description="Entries; with `values=false` without `value`")
    total: int | None
    page: int | None
    page_size: int
    next_cursor: str | None


class HistoryItem(BaseModel):
    version: int
    revision: int
    operation: Literal["put", "delete", "expire"]
    value: Any
    encoding: Encoding = None
    tags: dict[str, str] | None
    updated_at: Timestamp
    expires_at: Timestamp | None


class History(BaseModel):
    key: str
    items: list[HistoryItem]


class Exists(BaseModel):
    key: str
    exists: bool


class TtlInfo(BaseModel):
    key: str
    ttl: int | None


class Count(BaseModel):
    count: int


class BatchPutResult(BaseModel):
    items: list[Entry]


class BatchGetResult(BaseModel):
    items: list[Entry]
    missing: list[str]


class BatchDeleteResult(BaseModel):
    deleted: list[str]
    missing: list[str]


class Bucket(BaseModel):
    name: str
    description: str
    history: int
    ttl: int
    max_value_size: int
    revision: int
    keys: int
    bytes: int
    created_at: Timestamp
    search: bool = Field(default=False, description="Indexed for full-text search")
    search_state: Literal["on", "off", "building", "dropping"] = Field(
        default="off", description="building/dropping: a switch of search that was interrupted (PATCH again)"
    )
    search_bytes: int = Field(default=0, description="Bytes of its search index (included in bytes)")


class BucketList(BaseModel):
    items: list[Bucket]


def encode_value(value: Any, encoding: str | None, max_depth: int | None = None) -> str:
    """The JSON text stored for ``value``; ValueError when it is not valid JSON or base64, or nests
    deeper than ``max_depth``."""
    if max_depth is not None:
        check_json_depth(value, max_depth)
    if encoding == "base64":
        if not isinstance(value, str):
            raise ValueError("with encoding=base64 the value must be a base64 string")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("value is not valid base64") from exc
    return json_text(value)
