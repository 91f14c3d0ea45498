"""Plain ASGI middleware: anonymous /auth requests spend their client address's budget
(app/auth/throttle.py) before anything parses them; over it, 429 problem+json with Retry-After.

The requests: POST to register, login, token, refresh and logout under the API prefix. A refusal is
audited like the request it refuses (``auth.login`` for login and token), without a tenant.
"""

from __future__ import annotations

from app.auth.throttle import AnonymousLimiter
from app.platform.context import audit_note, client_ip_var
from app.platform.http.asgi import ASGIApp, Receive, Scope, Send
from app.platform.http.problems import problem_response

ANONYMOUS_ROUTES = {
    "/auth/register": "auth.register",
    "/auth/login": "auth.login",
    "/auth/token": "auth.login",  # the OAuth2 form of login
    "/auth/refresh": "auth.refresh",
    "/auth/logout": "auth.logout",
}
"""Anonymous /auth routes (path under the API prefix) and the audit action of each."""


class AnonymousAuthLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: AnonymousLimiter, api_prefix: str) -> None:
        self.app = app
        self.limiter = limiter
        prefix = api_prefix.rstrip("/")
        self.actions = {prefix + path: action for path, action in ANONYMOUS_ROUTES.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        action = self.actions.get(path) if scope["type"] == "http" and isinstance(path, str) else None
        if action is None or scope["method"] != "POST" or not self.limiter.enabled:
            await self.app(scope, receive, send)
            return
        retry_after = await self.limiter.take(client_ip_var.get())
        if retry_after is None:
            await self.app(scope, receive, send)
            return
        audit_note(action=action)
        detail = (
            f"too many /auth requests from your address (burst {self.limiter.burst}, "
            f"{self.limiter.rate_per_minute:g} per minute); retry in {retry_after} s"
        )
        response = problem_response(
            429, "auth_rate_limited", "Too Many Requests", detail, headers={"Retry-After": str(retry_after)}
        )
        await response(scope, receive, send)
