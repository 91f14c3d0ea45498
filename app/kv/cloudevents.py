"""CloudEvents 1.0 commits (README "CloudEvents commits"): an event whose ``data`` creates, merge-patches
or deletes one KV entry, as the event-sourced SSE store this project replaces accepted them.

Structured mode: the whole event is the JSON body (``application/cloudevents+json``, or
``application/json`` with a ``specversion``). Binary mode: the attributes are ``ce-*`` headers
(percent-encoded, as the HTTP binding says) and the body is ``data``.

``data`` is a JSON object with exactly one of ``resource_data`` (the entry's new value: create or
replace), ``patch`` (an RFC 7396 merge patch of the stored value) or ``deleted: true``. The key is
``data.resource_id``, else the event's ``subject``; the bucket is the extension attribute ``bucket``,
else ``data.bucket``, else ``default``. ``source`` + ``id`` name the event: the same event sent again
answers the first result (app/kv/event_routes.py).

Nothing here speaks HTTP: the route hands over the content type, the ``ce-*`` headers and the body.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from app.kv.service import DEFAULT_BUCKET
from app.platform.errors import InvalidInput, UnsupportedMediaType

SPEC_VERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
ATTRIBUTE_NAME_RE = re.compile(r"[a-z0-9]{1,20}")
MAX_ATTRIBUTE_CHARS = 1024
REQUIRED = ("specversion", "id", "source", "type")
STRING_ATTRIBUTES = (*REQUIRED, "subject", "datacontenttype", "dataschema", "time")

Operation = Literal["put", "patch", "delete"]


@dataclass(frozen=True, slots=True)
class Commit:
    """What one event asks of the store."""

    source: str
    event_id: str
    bucket: str
    key: str
    operation: Operation
    value: Any  # resource_data (put) or the merge patch (patch); None for delete
    fingerprint: str  # sha256 of the event (attributes and data), whichever mode carried it

    @property
    def identity(self) -> bytes:
        """``source`` + ``id``: the event's name, as the idempotency store's key. The newline keeps
        it apart from every Idempotency-Key header (printable ASCII only)."""
        return b"ce:" + self.source.encode() + b"\n" + self.event_id.encode()


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", errors=[{"field": field, "message": message, "type": "value_error"}])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json(body: bytes, field: str) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise _invalid(field, "nested too deeply") from exc
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise _invalid(field, "not valid UTF-8 JSON") from exc


def _is_json(media_type: str) -> bool:
    media_type = media_type.split(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def parse_event(content_type: str, headers: Iterable[tuple[str, str]], body: bytes) -> dict[str, Any]:
    """The event as a structured-mode JSON object, from either mode. ``headers``: (lowercase name,
    latin-1 value) of the request."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == BATCH:
        raise UnsupportedMediaType("batched CloudEvents are not supported: send one event per request")
    attributes: dict[str, Any] = {}
    for name, value in headers:
        if not name.startswith("ce-"):
            continue
        attribute = name[3:]
        if not ATTRIBUTE_NAME_RE.fullmatch(attribute) or attribute == "data":
            raise _invalid(f"header {name[:40]}", "a CloudEvents attribute name is 1-20 of a-z 0-9")
        try:
            decoded = unquote_to_bytes(value.encode("latin-1")).decode("utf-8")
        except UnicodeError as exc:
            raise _invalid(f"header {name}", "not percent-encoded UTF-8") from exc
        if attribute in attributes:
            raise _invalid(f"header {name}", "sent twice")
        attributes[attribute] = decoded
    if attributes:  # binary mode: the body is the data
        if media_type == STRUCTURED:
            raise _invalid("header ce-specversion", "ce-* headers come with binary mode, not a structured event")
        if body and not _is_json(content_type):
            raise UnsupportedMediaType("the data of a CloudEvent is committed as JSON: send application/json")
        if body:
            attributes["data"] = _json(body, "data")
        return attributes
    if not body:
        raise _invalid("body", "send a CloudEvent: a JSON body (structured mode) or ce-* headers (binary mode)")
    event = _json(body, "body")
    if not isinstance(event, dict):
        raise _invalid("body", "a structured CloudEvent is a JSON object")
    return event


def _attribute(event: dict[str, Any], name: str) -> str | None:
    value = event.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ATTRIBUTE_CHARS:
        raise _invalid(name, f"must be a non-empty string of at most {MAX_ATTRIBUTE_CHARS} characters")
    try:
        value.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800")
        raise _invalid(name, "must be valid Unicode") from exc
    return value


def commit_of(event: dict[str, Any]) -> Commit:
    """The commit an event asks for; 422 (``errors`` naming the attribute) for anything else."""
    for name in REQUIRED:
        if event.get(name) is None:
            raise _invalid(name, "required")
    values = {name: _attribute(event, name) for name in STRING_ATTRIBUTES}
    if values["specversion"] != SPEC_VERSION:
        raise _invalid("specversion", f"only CloudEvents {SPEC_VERSION} is supported")
    for name in event:
        if name not in ("data", "data_base64") and not ATTRIBUTE_NAME_RE.fullmatch(name):
            raise _invalid(name[:40], "a CloudEvents attribute name is 1-20 of a-z 0-9")
    if "data_base64" in event:
        raise _invalid("data_base64", "the data of a commit is JSON (data), not base64")
    content_type = values["datacontenttype"]
    if content_type is not None and not _is_json(content_type):
        raise UnsupportedMediaType("the data of a CloudEvent is committed as JSON (datacontenttype application/json)")
    data = event.get("data")
    if not isinstance(data, dict):
        raise _invalid("data", "an object with resource_data, patch or deleted: true")
    operations: list[Operation] = []
    if "resource_data" in data:
        operations.append("put")
    if "patch" in data:
        operations.append("patch")
    if data.get("deleted") is True:
        operations.append("delete")
    elif data.get("deleted") not in (None, False):
        raise _invalid("data.deleted", "must be true or false")
    if len(operations) != 1:
        raise _invalid("data", "exactly one of resource_data, patch or deleted: true")
    operation = operations[0]
    key = data.get("resource_id")
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if key is None:
        key = values["subject"]
        if key is None:
            raise _invalid("data.resource_id", "name the key: data.resource_id or the event's subject")
    elif not isinstance(key, str) or not key:
        raise _invalid("data.resource_id", "must be a non-empty string")
    bucket = event.get("bucket", data.get("bucket", DEFAULT_BUCKET))
    if not isinstance(bucket, str) or not bucket:
        raise _invalid("bucket", "must be a non-empty string")
    if operation == "patch" and not isinstance(data["patch"], dict):
        raise _invalid("data.patch", "a merge patch of an entry is a JSON object")
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    fingerprint = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    value = data["resource_data"] if operation == "put" else data["patch"] if operation == "patch" else None
    source, event_id = values["source"], values["id"]
    assert source is not None and event_id is not None  # required above
    return Commit(source, event_id, bucket, key, operation, value, fingerprint)
