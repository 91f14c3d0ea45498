"""One delivery attempt: the event document, signed, POSTed to the checked address of the endpoint.

The body is ``{"type", "timestamp", "bucket", "data"}``; for a KV change ``data`` is the very document
the watch stream sends for it (app/watch/events.py), for an object change the object's name, version,
size, sha256, content type and time; a ``gap`` tells which revisions could not be delivered.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from app.config import Settings
from app.platform.jsonutil import iso_ms
from app.watch.events import FeedEvent, event_data
from app.webhooks import safety, signing
from app.webhooks.model import Delivery, UnsafeUrl, Webhook
from app.webhooks.store import SyncWebhookStore

EXCERPT_BYTES = 256
USER_AGENT = "kvstore-webhooks/1.0"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    excerpt: str
    latency_ms: int
    started_ms: int
    result: str  # delivered | failed | timeout | refused | error


def _kv_data(store: SyncWebhookStore, tenant_id: str, d: Delivery) -> bytes:
    assert d.bucket_id is not None and d.revision is not None
    now_ms = int(time.time() * 1000)
    found = store.feed_entry(tenant_id, d.bucket_id, d.revision)
    if found is not None:
        event = FeedEvent.parse(*found)
        if not event.value_left_out:
            return event.data(True)
        value, encoding, value_revision = store.entry_value(tenant_id, d.bucket_id, event.key)
        return event_data(
            key=event.key,
            revision=event.revision,
            version=event.version,
            updated_ms=event.updated_ms,
            now_ms=now_ms,
            value=value,
            include_value=True,
            encoding=encoding or None,
            tags_json=event.tags_json,
            expires_ms=event.expires_ms,
            value_revision=value_revision,
            value_is_other=value_revision != event.revision,
        )
    # The feed entry was trimmed after the delivery was queued: what is known of the change, and for a
    # put the key's value now, marked with the revision it belongs to (as the watch stream does).
    key = d.key or ""
    if d.type == "kv.put":
        value, encoding, value_revision = store.entry_value(tenant_id, d.bucket_id, key)
        return event_data(
            key=key,
            revision=d.revision,
            version=d.version or 0,
            updated_ms=d.updated_ms or d.created_ms,
            now_ms=now_ms,
            value=value,
            include_value=True,
            encoding=encoding or None,
            value_revision=value_revision,
            value_is_other=value_revision != d.revision,
        )
    return event_data(
        key=key, revision=d.revision, version=d.version or 0, updated_ms=d.updated_ms or d.created_ms, now_ms=now_ms
    )


def body(store: SyncWebhookStore, tenant_id: str, hook: Webhook, d: Delivery) -> bytes:
    """The JSON document of a delivery (the same on every attempt but for a value read afresh)."""
    extra = d.extra
    if d.type.startswith("kv."):
        data = _kv_data(store, tenant_id, d)
    elif d.type.startswith("object."):
        data = json.dumps(
            {
                "name": d.key,
                "version": d.version,
                "size": extra.get("size"),
                "sha256": extra.get("sha256") or None,
                "content_type": extra.get("ctype") or None,
                "sequence": d.revision,
                "updated_at": iso_ms(d.updated_ms or d.created_ms),
            },
            separators=(",", ":"),
        ).encode()
    elif d.type == "gap":
        to_rev = extra.get("to_rev")
        data = json.dumps(
            {
                "feed": "objects" if extra.get("bid") in (None, False) else "kv",
                "from_revision": extra.get("from_rev"),
                "to_revision": None if to_rev in (None, False) else to_rev,
                "reason": extra.get("reason"),
            },
            separators=(",", ":"),
        ).encode()
    else:
        data = json.dumps(
            {"webhook_id": hook.id, "message": "a test event from kvstore"}, separators=(",", ":")
        ).encode()
    bucket = json.dumps(d.bucket).encode()
    head = b'{"type":%s,"timestamp":"%s","bucket":%s,"data":' % (
        json.dumps(d.type).encode(),
        iso_ms(d.updated_ms or d.created_ms).encode(),
        bucket,
    )
    return head + data + b"}"


def new_client(settings: Settings) -> httpx.Client:
    """No redirects, no proxies from the environment, short timeouts."""
    timeout = httpx.Timeout(
        settings.webhook_read_timeout_seconds,
        connect=settings.webhook_connect_timeout_seconds,
        pool=settings.webhook_connect_timeout_seconds,
    )
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


def _excerpt(raw: bytes) -> str:
    return raw[:EXCERPT_BYTES].decode("utf-8", "replace")


def attempt(http: httpx.Client, settings: Settings, hook: Webhook, msg_id: str, payload: bytes) -> Outcome:
    """POST the payload to the endpoint; 2xx is success. Only the status and a short excerpt are kept."""
    started = time.monotonic()
    started_ms = int(time.time() * 1000)

    def done(ok: bool, status: int | None, excerpt: str, result: str) -> Outcome:
        latency = int((time.monotonic() - started) * 1000)
        return Outcome(ok, status, excerpt[:EXCERPT_BYTES], latency, started_ms, result)

    try:
        target = safety.parse_target(hook.url, settings)
        address, _family = safety.resolve(target)[0]
    except UnsafeUrl as exc:
        return done(False, None, f"refused: {exc.detail}", "refused")
    literal = f"[{address}]" if ":" in address else address
    url = f"{target.scheme}://{literal}:{target.port}{target.path}"
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host_header,
        **signing.headers(hook.secret, msg_id, timestamp, payload),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with http.stream("POST", url, content=payload, headers=headers, extensions=extensions) as response:
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) >= EXCERPT_BYTES:
                    break
            status = response.status_code
    except httpx.TimeoutException as exc:
        return done(False, None, f"timeout: {type(exc).__name__}", "timeout")
    except httpx.HTTPError as exc:
        return done(False, None, f"error: {type(exc).__name__}: {exc}", "error")
    ok = 200 <= status < 300
    return done(ok, status, _excerpt(raw), "delivered" if ok else "failed")
