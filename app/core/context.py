"""Per-request context (request id, tenant id, route) for logs and audit events."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)
username_var: ContextVar[str | None] = ContextVar("username", default=None)
client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)
