"""Annotated dependency aliases shared by the routers."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from app.auth.service import AuthService
from app.auth.sessions import SessionRevocations
from app.config import Settings
from app.platform.context import audit_note, response_headers_var, tenant_id_var, username_var
from app.platform.errors import Unauthorized
from app.platform.redis import AsyncDataRedis
from app.platform.security import AccessClaims, TokenService

# Every dependency is `async def`: FastAPI runs a plain `def` one in a worker thread, which costs
# more than the whole lookup.
# auto_error=False: a missing token is answered by our own 401 problem, not FastAPI's.
TOKEN_URL = "/api/v1/auth/token"
SCHEME_NAME = "OAuth2PasswordBearer"  # one scheme in the docs, whichever dependency carries it
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, scheme_name=SCHEME_NAME, auto_error=False)


# app.state is untyped: each dependency names the type of what it hands out.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_data_redis(request: Request) -> AsyncDataRedis:
    redis: AsyncDataRedis = request.app.state.data_redis
    return redis


async def get_token_service(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


async def get_auth_service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


async def authenticate(tokens: TokenService, sessions: SessionRevocations, token: str | None) -> AccessClaims:
    """The claims of a bearer access token of a session that has not ended; sets the tenant for logs.
    Raises 401 otherwise. No Redis round trip while the process's copy of ended sessions is current."""
    if not token:
        raise Unauthorized("Not authenticated: send 'Authorization: Bearer <access token>'")
    claims = tokens.verify_access_token(token)
    await sessions.check(claims)
    tenant_id_var.set(claims.tenant_id)
    username_var.set(claims.username)
    audit_note(tenant_id=claims.tenant_id, username=claims.username)
    return claims


class BearerClaims(OAuth2PasswordBearer):
    """The claims of the request's bearer access token, rate-limited per tenant.

    One dependency that is also the OpenAPI security scheme (the Authorize button of /docs), so
    FastAPI resolves a single dependency per request instead of a chain of two.
    """

    def __init__(self) -> None:
        super().__init__(tokenUrl=TOKEN_URL, scheme_name=SCHEME_NAME, auto_error=False)

    async def __call__(self, request: Request) -> AccessClaims:  # type: ignore[override]
        state = request.app.state
        claims = await authenticate(state.tokens, state.sessions, bearer_token(request.headers.get("authorization")))
        await apply_rate_limit(request.app.state.rate_limiter, claims.tenant_id)
        return claims


get_current_claims = BearerClaims()


class RequestHeaders(Protocol):
    def headers(self) -> list[tuple[bytes, bytes]]: ...


class RequestBudget(Protocol):
    """What authentication needs of the tenant's rate limiter (app/tenancy/ratelimit.py): auth sits
    below tenancy, so it names the shape, not the class."""

    @property
    def enabled(self) -> bool: ...

    async def take(self, tenant_id: str) -> RequestHeaders: ...


async def apply_rate_limit(limiter: RequestBudget, tenant_id: str) -> None:
    """Spend one request of the tenant's budget; the RateLimit-* headers go on the response."""
    if limiter.enabled:
        state = await limiter.take(tenant_id)
        headers = response_headers_var.get()
        if headers is not None:
            headers.extend(state.headers())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


async def authenticate_stream(connection: HTTPConnection, token: str | None) -> AccessClaims:
    """Claims of a watch stream (SSE or WebSocket), rate-limited like any request."""
    claims = await authenticate(connection.app.state.tokens, connection.app.state.sessions, token)
    await apply_rate_limit(connection.app.state.rate_limiter, claims.tenant_id)
    return claims


async def get_stream_claims(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    access_token: Annotated[
        str | None, Query(description="The access token, for EventSource clients that cannot set headers")
    ] = None,
) -> AccessClaims:
    """The Authorization header, else the ``access_token`` query parameter (browsers cannot set
    headers on EventSource or WebSocket)."""
    return await authenticate_stream(request, token or access_token)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DataRedis = Annotated[AsyncDataRedis, Depends(get_data_redis)]
TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
CurrentClaims = Annotated[AccessClaims, Depends(get_current_claims)]
StreamClaims = Annotated[AccessClaims, Depends(get_stream_claims)]
