"""Annotated dependency aliases shared by the routers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from app.auth.api_keys import KEY_PREFIX, ApiKeys
from app.auth.service import AuthService
from app.auth.sessions import SessionRevocations
from app.config import Settings
from app.platform.context import audit_note, response_headers_var, tenant_id_var, username_var
from app.platform.errors import InsufficientScope, KVStoreError, Unauthorized
from app.platform.idempotency import Caller
from app.platform.redis import REDIS_ERRORS, AsyncDataRedis
from app.platform.security import ANY_CREDENTIAL, SESSION_ONLY, AccessClaims, TokenService

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


async def authenticate(state: Any, token: str | None) -> AccessClaims:
    """The principal of a bearer credential: a session's access token (of a session that has not
    ended) or an API key (``kvs_...``, unrevoked and unexpired); sets the tenant for logs and the
    audit event. Raises 401 otherwise. No Redis round trip while the process's copy of the
    revocation stream is current."""
    if not token:
        raise Unauthorized("Not authenticated: send 'Authorization: Bearer <access token or API key>'")
    if token.startswith(KEY_PREFIX):
        api_keys: ApiKeys = state.api_keys
        claims = await api_keys.verify(token)
    else:
        tokens: TokenService = state.tokens
        sessions: SessionRevocations = state.sessions
        claims = tokens.verify_access_token(token)
        await sessions.check(claims)
    tenant_id_var.set(claims.tenant_id)
    username_var.set(claims.username)
    audit_note(
        tenant_id=claims.tenant_id, username=claims.username, api_key_id=claims.key_id, api_key_name=claims.key_name
    )
    return claims


def idempotency_caller(state: Any) -> Callable[[str | None], Awaitable[Caller | None]]:
    """The caller of a request with an Idempotency-Key (app/platform/http/idempotency.py), from its
    Authorization header by :func:`authenticate`; None when the credential is missing or bad (the
    route then answers as it always does)."""

    async def identify(authorization: str | None) -> Caller | None:
        token = bearer_token(authorization)
        if token is None:
            return None
        try:
            claims = await authenticate(state, token)
        except (KVStoreError, *REDIS_ERRORS):
            return None
        principal = f"k:{claims.key_id}" if claims.key_id is not None else f"u:{claims.username}"
        return Caller(claims.tenant_id, principal)

    return identify


def require_scope(claims: AccessClaims, scope: str) -> None:
    """403 insufficient_scope unless the principal holds ``scope``."""
    if not claims.allows(scope):
        if scope == SESSION_ONLY:
            raise InsufficientScope("this needs a login session; an API key cannot do it")
        raise InsufficientScope(f"this API key lacks the scope {scope!r}", scope)


def require_bucket(claims: AccessClaims, bucket: str) -> None:
    """403 insufficient_scope unless the principal may use ``bucket``."""
    if not claims.allows_bucket(bucket):
        raise InsufficientScope(f"this API key may not use the bucket {bucket[:100]!r}")


def require_key(claims: AccessClaims, key: str) -> None:
    """403 insufficient_scope unless ``key`` (a KV key or object name) is under the principal's prefix."""
    if not claims.allows_key(key):
        raise InsufficientScope(f"this API key may only use keys and names starting with {claims.key_prefix!r}")


def narrow_prefix(claims: AccessClaims, prefix: str) -> str:
    """The prefix a listing or watch filters on: ``prefix`` within the principal's key prefix.
    A prefix wider than the key's is narrowed to the key's; one beside it is refused (403)."""
    if prefix.startswith(claims.key_prefix):
        return prefix
    if claims.key_prefix.startswith(prefix):
        return claims.key_prefix
    raise InsufficientScope(f"this API key may only list keys and names starting with {claims.key_prefix!r}")


def require_resource(claims: AccessClaims, bucket: str | None, key: str | None) -> None:
    """403 insufficient_scope unless the principal may use ``bucket`` and ``key`` (a KV key or object
    name), each when given; a session may use every one. HTTP routes and gRPC calls alike."""
    if claims.key_id is None:
        return
    if bucket is not None:
        require_bucket(claims, bucket)
    if key is not None:
        require_key(claims, key)


def check_request(claims: AccessClaims, scope: str, request: HTTPConnection, fixed_bucket: str | None) -> None:
    """The route's scope, and its bucket and key/name path parameters against the principal."""
    require_scope(claims, scope)
    if claims.key_id is None:
        return  # a session: no path parameters read per request
    params = request.path_params
    bucket = fixed_bucket if fixed_bucket is not None else params.get("bucket")
    require_resource(claims, bucket, params.get("key", params.get("name")))


class BearerClaims(OAuth2PasswordBearer):
    """The principal of the request's bearer credential, checked against the route's ``scope`` (and
    its bucket/key path parameters), rate-limited per tenant.

    One dependency that is also the OpenAPI security scheme (the Authorize button of /docs), so
    FastAPI resolves a single dependency per request instead of a chain of two. Every authenticated
    route names its scope through one of these (tests/auth/test_route_scopes.py walks the routes).
    """

    def __init__(self, scope: str = ANY_CREDENTIAL, fixed_bucket: str | None = None) -> None:
        super().__init__(tokenUrl=TOKEN_URL, scheme_name=SCHEME_NAME, auto_error=False)
        self.scope = scope
        self.fixed_bucket_scope = fixed_bucket

    async def __call__(self, request: Request) -> AccessClaims:  # type: ignore[override]
        state = request.app.state
        claims = await authenticate(state, bearer_token(request.headers.get("authorization")))
        check_request(claims, self.scope, request, self.fixed_bucket_scope)
        await apply_rate_limit(state.rate_limiter, claims.tenant_id)
        return claims


get_current_claims = BearerClaims(ANY_CREDENTIAL)


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


async def authenticate_stream(
    connection: HTTPConnection, token: str | None, fixed_bucket: str | None = None
) -> AccessClaims:
    """Principal of a watch stream (SSE or WebSocket): needs kv:watch and the bucket; rate-limited
    like any request."""
    claims = await authenticate(connection.app.state, token)
    check_request(claims, WATCH_SCOPE, connection, fixed_bucket)
    await apply_rate_limit(connection.app.state.rate_limiter, claims.tenant_id)
    return claims


WATCH_SCOPE = "kv:watch"


class StreamClaimsDependency:
    """The Authorization header, else the ``access_token`` query parameter (browsers cannot set
    headers on EventSource or WebSocket); needs kv:watch."""

    scope = WATCH_SCOPE

    def __init__(self, fixed_bucket: str | None = None) -> None:
        self.fixed_bucket = fixed_bucket

    async def __call__(
        self,
        request: Request,
        token: Annotated[str | None, Depends(oauth2_scheme)],
        access_token: Annotated[
            str | None,
            Query(description="The access token or API key, for EventSource clients that cannot set headers"),
        ] = None,
    ) -> AccessClaims:
        return await authenticate_stream(request, token or access_token, self.fixed_bucket)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DataRedis = Annotated[AsyncDataRedis, Depends(get_data_redis)]
TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
CurrentClaims = Annotated[AccessClaims, Depends(get_current_claims)]  # any credential
SessionClaims = Annotated[AccessClaims, Depends(BearerClaims(SESSION_ONLY))]  # a login session, no API key
AdminClaims = Annotated[AccessClaims, Depends(BearerClaims("admin"))]  # buckets and API keys
KVReadClaims = Annotated[AccessClaims, Depends(BearerClaims("kv:read"))]
ObjectsReadClaims = Annotated[AccessClaims, Depends(BearerClaims("objects:read"))]
ObjectsWriteClaims = Annotated[AccessClaims, Depends(BearerClaims("objects:write"))]
AuditReadClaims = Annotated[AccessClaims, Depends(BearerClaims("audit:read"))]
UsageReadClaims = Annotated[AccessClaims, Depends(BearerClaims("usage:read"))]
