"""Between protobuf messages and the KV service's models: request values and items checked by the
HTTP API's own schemas (app/kv/schemas.py), entries and watch events rendered as ``kvstore.v1.Entry``."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.grpc.gen import kvstore_v1_pb2 as pb
from app.kv.model import PutItem, StoredEntry
from app.kv.schemas import BatchItem, encode_value
from app.kv.service import DEFAULT_BUCKET
from app.platform.errors import InvalidInput

BINARY = "base64"  # the stored encoding of bytes: base64 text in a JSON string, as the HTTP API keeps it


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def bucket_of(name: str) -> str:
    """The request's bucket: empty is the bucket `default`."""
    return name or DEFAULT_BUCKET


def parsed_value(value: bytes, encoding: int) -> tuple[Any, str | None]:
    """The value as the HTTP API receives it in a body: a JSON value, or base64 text with
    encoding ``base64``. INVALID_ARGUMENT when ENCODING_JSON bytes are not UTF-8 JSON text."""
    if encoding == pb.ENCODING_BINARY:
        return base64.b64encode(value).decode(), BINARY
    if encoding != pb.ENCODING_JSON:
        raise InvalidInput(f"unknown encoding {encoding}: ENCODING_JSON (0) or ENCODING_BINARY (1)")
    try:
        return json.loads(value.decode("utf-8"), parse_constant=_reject_constant), None
    except RecursionError as exc:
        raise InvalidInput("the value nests arrays/objects too deeply") from exc
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise InvalidInput(
            "with ENCODING_JSON the value must be UTF-8 JSON text (send raw bytes with ENCODING_BINARY)",
            errors=[{"field": "value", "message": "not JSON text", "type": "value_error"}],
        ) from exc


def put_item(
    key: str,
    value: bytes,
    encoding: int,
    ttl: int | None,
    tags: dict[str, str] | None,
    max_depth: int,
    where: str = "",
) -> PutItem:
    """One write, validated as an HTTP body (key length, ttl range, tag names and values) and
    encoded into the JSON text that is stored; ``where`` prefixes the message (``item 3: ``)."""
    try:
        parsed, stored_encoding = parsed_value(value, encoding)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}{exc.detail}", **exc.extra) from exc
    try:
        item = BatchItem.model_validate(
            {"key": key, "value": parsed, "encoding": stored_encoding, "ttl": ttl, "tags": tags}
        )
        value_json = encode_value(item.value, item.encoding, max_depth)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "value"
        message = error["msg"].removeprefix("Value error, ")
        raise InvalidInput(
            f"{where}{field}: {message}", errors=[{"field": field, "message": message, "type": error["type"]}]
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"{where}value: {exc}") from exc
    return PutItem(item.key, value_json, item.encoding, item.ttl, item.tags)


def stored_value(value_json: bytes, encoding: str | None) -> tuple[bytes, int]:
    """A stored value as the typed API carries it: JSON text, or the raw bytes of a binary value."""
    if encoding == BINARY:
        return base64.b64decode(json.loads(value_json)), pb.ENCODING_BINARY
    return value_json, pb.ENCODING_JSON


def entry_message(entry: StoredEntry, now_ms: int) -> pb.Entry:
    value, encoding = stored_value(entry.value_json, entry.encoding)
    message = pb.Entry(
        key=entry.key,
        value=value,
        encoding=encoding,
        version=entry.version,
        revision=entry.revision,
        tags=json.loads(entry.tags_json or b"null") or {},
        created_at_ms=entry.created_ms,
        updated_at_ms=entry.updated_ms,
    )
    ttl = entry.ttl_seconds(now_ms)
    if ttl is not None:
        message.ttl_seconds = ttl
    if entry.expires_ms is not None:
        message.expires_at_ms = entry.expires_ms
    return message


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp() * 1000 + 0.5)


def event_entry(data: dict[str, Any]) -> pb.Entry:
    """The entry of a watch event's JSON payload (app/watch/events.py: event_data)."""
    message = pb.Entry(
        key=data["key"],
        version=data.get("version") or 0,
        revision=data.get("revision") or 0,
        tags=data.get("tags") or {},
        updated_at_ms=_ms(data.get("updated_at")) or 0,
    )
    if "value" in data and data["value"] is not None:
        if data.get("encoding") == BINARY:
            message.value, message.encoding = base64.b64decode(data["value"]), pb.ENCODING_BINARY
        else:
            message.value = json.dumps(data["value"], separators=(",", ":"), ensure_ascii=False).encode()
    if data.get("ttl") is not None:
        message.ttl_seconds = data["ttl"]
    expires = _ms(data.get("expires_at"))
    if expires is not None:
        message.expires_at_ms = expires
    return message


def text_value(value_json: bytes) -> str:
    """A stored value as the Go store's string: a JSON string's text, base64 text of bytes, else the
    JSON text itself (a value written as JSON through HTTP)."""
    value = json.loads(value_json)
    return value if isinstance(value, str) else value_json.decode()
