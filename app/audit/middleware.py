"""Plain ASGI middleware that records one audit event per mutating API request, after its response.

Which requests: POST, PUT, PATCH and DELETE under the API prefix (unless the handler calls
``audit_skip()``, for a POST that only reads). The event's fields:

- ``action``: what the handler or service set with ``audit_note(action=...)``; else the route's
  ``name`` when it contains a dot (``@router.put(..., name="kv.put")``); else
  ``<first route tag>.<route name>`` (the endpoint function: ``auth.register``, ``kv.put_key``);
  ``unmatched`` when no route matched.
- ``tenant_id``/``username``: set by authentication (``app.auth.deps.authenticate``) or by the auth
  service for register/login/refresh/logout, through ``audit_note``.
- ``api_key_id``/``api_key_name``: the API key that made the request (set by authentication);
  absent for a login session.
- ``bucket``/``key``: ``audit_note`` values, else the path parameters ``bucket`` and ``key`` (or
  ``name``, for objects).
- ``status``/``outcome``: the response status (500 when the app raised, 499 when the client went
  away first); ``outcome`` is ``success`` below 400, else ``failure``.
- ``request_id``, ``client_ip``: from the request context middleware, which runs outside this one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from app.audit.model import Event, new_event
from app.audit.service import AuditService, InlineEvent
from app.platform.context import AuditNote, audit_note_var, client_ip_var, request_id_var
from app.platform.http.asgi import ASGIApp, Receive, Scope, Send
from app.platform.http.middleware import watch_response

logger = logging.getLogger("kvstore.audit")

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CLIENT_CLOSED_REQUEST = 499


def route_action(route: object) -> str:
    """The default action name of a route: the ``audit_action`` its endpoint names (the same
    operation under several routes has one name), its dotted ``name``, else ``<first tag>.<name>``."""
    named = getattr(getattr(route, "endpoint", None), "audit_action", None)
    if isinstance(named, str):
        return named
    name = getattr(route, "name", None)
    if not isinstance(name, str) or not name:
        return "unmatched"
    if "." in name:
        return name
    tags = getattr(route, "tags", None)
    return f"{tags[0]}.{name}" if tags else name


def path_param(scope: Scope, *names: str) -> str | None:
    """The first of the route's path parameters ``names`` that the request has."""
    params = scope.get("path_params")
    if isinstance(params, Mapping):
        for name in names:
            value = params.get(name)
            if isinstance(value, str) and value:
                return value
    return None


class AuditMiddleware:
    def __init__(self, app: ASGIApp, audit: AuditService, api_prefix: str) -> None:
        self.app = app
        self.audit = audit
        self.prefix = api_prefix.rstrip("/") + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if (
            scope["type"] != "http"
            or scope["method"] not in MUTATING_METHODS
            or not isinstance(path, str)
            or not path.startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        note = AuditNote(scope=scope)
        note_token = audit_note_var.set(note)
        response, send = watch_response(scope, send)
        status = 0
        try:
            await self.app(scope, receive, send)
            status = response.status
        except asyncio.CancelledError:
            status = response.status or CLIENT_CLOSED_REQUEST
            raise
        except Exception:
            status = response.status or 500
            raise
        finally:
            audit_note_var.reset(note_token)
            if not note.skip:
                try:
                    self._record(scope, note, status or 500)
                except Exception:  # auditing never turns a finished request into an error
                    logger.exception("could not record the audit event")

    def _record(self, scope: Scope, note: AuditNote, status: int) -> None:
        self.audit.record(request_event(scope, note, status))


def request_event(scope: Scope, note: AuditNote, status: int) -> Event:
    """The audit event of the request of ``scope`` answered ``status`` (the fields listed above)."""
    return new_event(
        action=note.action or route_action(scope.get("route")),
        status=status,
        tenant_id=note.tenant_id,
        username=note.username,
        api_key_id=note.api_key_id,
        api_key_name=note.api_key_name,
        bucket=note.bucket or path_param(scope, "bucket"),
        key=note.key or path_param(scope, "key", "name"),
        request_id=request_id_var.get(),
        client_ip=client_ip_var.get(),
    )


def inline_event() -> InlineEvent | None:
    """The current request's audit event for a write to record in its own script step (a single-key
    PUT: its status is 201 or 200, which the script knows), made as :func:`request_event` makes it;
    None outside an audited request, or when the event is not the request's to record this way (no
    tenant, or skipped; AuditService.inline_event). The middleware records nothing more once the
    write has recorded it."""
    note = audit_note_var.get()
    if note is None or note.skip or note.scope is None or not note.tenant_id:
        return None
    audit: AuditService = note.scope["app"].state.audit
    return audit.inline_event(request_event(note.scope, note, 200), note)
