"""Per-request context (request id, tenant id, route) for logs and audit events."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)
username_var: ContextVar[str | None] = ContextVar("username", default=None)
client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)


@dataclass(slots=True)
class AuditNote:
    """Facts about the current request's audit event that only the handler or service knows.

    The audit middleware puts a fresh note in ``audit_note_var`` before it calls the app and
    reads it after the response; being a mutable object, what code deep inside the request
    writes to it reaches the middleware even across copied contexts (threads, sub-tasks)."""

    tenant_id: str | None = None
    username: str | None = None
    action: str | None = None
    bucket: str | None = None
    key: str | None = None
    api_key_id: str | None = None  # the API key that made the request (None: a login session)
    api_key_name: str | None = None
    skip: bool = False
    # The request's ASGI scope (set by the audit middleware): what a write that records the event in
    # its own script step builds the event from, as the middleware would (app/audit/middleware.py).
    scope: Any = None


audit_note_var: ContextVar[AuditNote | None] = ContextVar("audit_note", default=None)


def audit_note(
    *,
    tenant_id: str | None = None,
    username: str | None = None,
    action: str | None = None,
    bucket: str | None = None,
    key: str | None = None,
    api_key_id: str | None = None,
    api_key_name: str | None = None,
) -> None:
    """Enrich the audit event of the current request (fields left None are not changed).

    A no-op outside an audited request (reads, tests that call services directly)."""
    note = audit_note_var.get()
    if note is None:
        return
    if tenant_id is not None:
        note.tenant_id = tenant_id
    if username is not None:
        note.username = username
    if action is not None:
        note.action = action
    if bucket is not None:
        note.bucket = bucket
    if key is not None:
        note.key = key
    if api_key_id is not None:
        note.api_key_id = api_key_id
    if api_key_name is not None:
        note.api_key_name = api_key_name


def audit_skip() -> None:
    """The current request only reads (a POST that fetches): record no audit event for it."""
    note = audit_note_var.get()
    if note is not None:
        note.skip = True


# Headers that dependencies add to the response (rate-limit headers): a fresh list per request,
# set by RequestContextMiddleware before the app runs, so every copy of the context shares it.
response_headers_var: ContextVar[list[tuple[bytes, bytes]] | None] = ContextVar("response_headers", default=None)
