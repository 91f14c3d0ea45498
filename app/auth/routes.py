"""/auth: register, login (JSON and OAuth2 form), refresh, logout, logout-all, password, me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response, status
from pydantic import ValidationError

from app.auth.deps import AuthServiceDep, CurrentClaims, SessionClaims
from app.auth.model import IssuedTokens
from app.auth.schemas import (
    LoginRequest,
    Me,
    PasswordChange,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    TokenPair,
)
from app.platform.errors import InvalidCredentials
from app.platform.http.schemas import PROBLEM_RESPONSES

router = APIRouter(prefix="/auth", tags=["auth"])


def _pair(issued: IssuedTokens) -> TokenPair:
    return TokenPair(access_token=issued.access_token, refresh_token=issued.refresh_token, expires_in=issued.expires_in)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=RegisterResponse,
    responses=PROBLEM_RESPONSES(409, 422, 429),
)
async def register(body: RegisterRequest, auth: AuthServiceDep) -> RegisterResponse:
    issued = await auth.register(body.username, str(body.email), body.password)
    return RegisterResponse(tenant_id=issued.tenant_id, **_pair(issued).model_dump())


@router.post("/login", response_model=TokenPair, responses=PROBLEM_RESPONSES(401, 422, 429))
async def login(body: LoginRequest, auth: AuthServiceDep) -> TokenPair:
    return _pair(await auth.login(body.username, body.password))


@router.post(
    "/token",
    response_model=TokenPair,
    responses=PROBLEM_RESPONSES(401, 422, 429),
    summary="Login with an OAuth2 password form (the Authorize button of /docs)",
)
async def token(
    username: Annotated[str, Form(max_length=256)],
    password: Annotated[str, Form(max_length=1024)],
    auth: AuthServiceDep,
) -> TokenPair:
    try:
        body = LoginRequest(username=username, password=password)
    except ValidationError as exc:
        raise InvalidCredentials("Incorrect username or password") from exc
    return _pair(await auth.login(body.username, body.password))


@router.post("/refresh", response_model=TokenPair, responses=PROBLEM_RESPONSES(401, 422, 429))
async def refresh(body: RefreshRequest, auth: AuthServiceDep) -> TokenPair:
    return _pair(await auth.refresh(body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=PROBLEM_RESPONSES(401, 422, 429))
async def logout(body: RefreshRequest, auth: AuthServiceDep) -> Response:
    await auth.logout(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEM_RESPONSES(401),
    summary="End every session of the account, this one too (API keys stay: revoke them separately)",
)
async def logout_all(claims: SessionClaims, auth: AuthServiceDep) -> Response:
    """Every access and refresh token issued so far is refused from now on, on every replica within 1 s."""
    await auth.logout_all(claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEM_RESPONSES(401, 422, 429),
    summary="Change the password; every other session ends",
)
async def change_password(body: PasswordChange, claims: SessionClaims, auth: AuthServiceDep) -> Response:
    """The current password is checked (a wrong one counts as a failed login); this session goes on."""
    await auth.change_password(claims, body.current_password, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=Me, responses=PROBLEM_RESPONSES(401))
async def me(claims: CurrentClaims, auth: AuthServiceDep) -> Me:
    user = await auth.get_user(claims.tenant_id)
    return Me(
        username=user.username,
        email=user.email,
        tenant_id=user.tenant_id,
        is_active=user.is_active,
        created_at=user.created_at,
    )
