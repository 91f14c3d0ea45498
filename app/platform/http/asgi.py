"""The ASGI interface as plain types, for middleware outside app/platform/http that must not import
Starlette (a capability's middleware): the same shapes as ``starlette.types``, so such middleware is
added to the app like any other. Values are ``object``: a middleware checks what it reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

Scope = MutableMapping[str, object]
Message = MutableMapping[str, object]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
