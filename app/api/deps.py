"""Annotated dependency aliases shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.config import Settings
from app.core.context import audit_note, tenant_id_var, username_var
from app.core.exceptions import Unauthorized
from app.core.redis import AsyncDataRedis
from app.core.security import AccessClaims, TokenService
from app.services.audit import AuditService
from app.services.auth import AuthService
from app.services.kv import KVService

# auto_error=False: a missing token is answered by our own 401 problem, not FastAPI's.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_data_redis(request: Request) -> AsyncDataRedis:
    return request.app.state.data_redis


def get_token_service(request: Request) -> TokenService:
    return request.app.state.tokens


def get_auth_service(request: Request) -> AuthService:
    return request.app.state.auth_service


def get_kv_service(request: Request) -> KVService:
    return request.app.state.kv_service


def get_audit_service(request: Request) -> AuditService:
    return request.app.state.audit


def authenticate(tokens: TokenService, token: str | None) -> AccessClaims:
    """The claims of a bearer access token; sets the tenant for logs. Raises 401 otherwise."""
    if not token:
        raise Unauthorized("Not authenticated: send 'Authorization: Bearer <access token>'")
    claims = tokens.verify_access_token(token)
    tenant_id_var.set(claims.tenant_id)
    username_var.set(claims.username)
    audit_note(tenant_id=claims.tenant_id, username=claims.username)
    return claims


async def get_current_claims(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]) -> AccessClaims:
    return authenticate(request.app.state.tokens, token)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DataRedis = Annotated[AsyncDataRedis, Depends(get_data_redis)]
TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
KVServiceDep = Annotated[KVService, Depends(get_kv_service)]
AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
CurrentClaims = Annotated[AccessClaims, Depends(get_current_claims)]
