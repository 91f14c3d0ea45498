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
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES

router = APIRouter(prefix="/auth", tags=["auth"])


def _pair(issued: IssuedTokens) -> TokenPair:
    return TokenPair(access_token=issued.access_token, refresh_token=issued.refresh_token, expires_in=issued.expires_in)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=RegisterResponse,
    responses=PROBLEM_RESPONSES(409, 422, 429),
    summary="Register an account",
    operation_id="auth_register",
    openapi_extra=body_examples(
        new_account={"username": "alice", "email": "alice@example.com", "password": "Secret123"}
    ),
)
async def register(body: RegisterRequest, auth: AuthServiceDep) -> RegisterResponse:
    """Create an account and its tenant, and log in: 201 with the tenant id and a token pair (a new
    session). Usernames are 3-32 of `a-z 0-9 _ . -` (case-insensitive); passwords 8-72 bytes with an
    upper-case letter, a lower-case letter and a digit. 409 when the username is taken; 429 when this
    address spent its anonymous /auth budget."""
    issued = await auth.register(body.username, str(body.email), body.password)
    return RegisterResponse(tenant_id=issued.tenant_id, **_pair(issued).model_dump())


@router.post(
    "/login",
    response_model=TokenPair,
    responses=PROBLEM_RESPONSES(401, 422, 429),
    summary="Log in",
    operation_id="auth_login",
    openapi_extra=body_examples(login={"username": "alice", "password": "Secret123"}),
)
async def login(body: LoginRequest, auth: AuthServiceDep) -> TokenPair:
    """Start a session: an access token (`expires_in` seconds) and a refresh token. 401 for a wrong
    username or password; 429 `login_throttled` (with `Retry-After`) after too many failed logins
    of this username from this address."""
    return _pair(await auth.login(body.username, body.password))


@router.post(
    "/token",
    response_model=TokenPair,
    responses=PROBLEM_RESPONSES(401, 422, 429),
    summary="Log in with an OAuth2 password form",
    operation_id="auth_token",
)
async def token(
    username: Annotated[str, Form(max_length=256)],
    password: Annotated[str, Form(max_length=1024)],
    auth: AuthServiceDep,
) -> TokenPair:
    """The same login as `POST /auth/login`, from an `application/x-www-form-urlencoded` form: what
    the Authorize button of `/docs` sends. Any invalid credential is a 401."""
    try:
        body = LoginRequest(username=username, password=password)
    except ValidationError as exc:
        raise InvalidCredentials("Incorrect username or password") from exc
    return _pair(await auth.login(body.username, body.password))


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses=PROBLEM_RESPONSES(401, 422, 429),
    summary="Refresh the token pair",
    operation_id="auth_refresh",
    openapi_extra=body_examples(refresh={"refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2lnbmF0dXJl"}),
)
async def refresh(body: RefreshRequest, auth: AuthServiceDep) -> TokenPair:
    """A new access and refresh token of the same session. Refresh tokens rotate: the one sent is
    spent, and presenting a spent one again ends the whole session (401)."""
    return _pair(await auth.refresh(body.refresh_token))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEM_RESPONSES(401, 422, 429),
    summary="Log out (end this session)",
    operation_id="auth_logout",
    openapi_extra=body_examples(logout={"refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2lnbmF0dXJl"}),
)
async def logout(body: RefreshRequest, auth: AuthServiceDep) -> Response:
    """End the session of this refresh token: 204, and from then on its access tokens answer
    `401 session_ended` on every replica within a second. Other sessions and API keys go on."""
    await auth.logout(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEM_RESPONSES(401),
    summary="Log out everywhere",
    operation_id="auth_logout_all",
)
async def logout_all(claims: SessionClaims, auth: AuthServiceDep) -> Response:
    """End every session of the account, this one too: every access and refresh token issued so far
    is refused from now on, on every replica within 1 s. API keys stay (revoke them separately); an
    API key cannot call this (403)."""
    await auth.logout_all(claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEM_RESPONSES(401, 422, 429),
    summary="Change the password",
    operation_id="auth_change_password",
    openapi_extra=body_examples(change={"current_password": "Old-secret1", "new_password": "New-secret2"}),
)
async def change_password(body: PasswordChange, claims: SessionClaims, auth: AuthServiceDep) -> Response:
    """204: the new password is set and every other session of the account ends; this one goes on.
    The current password is checked (a wrong one is a 401 and counts as a failed login, throttled
    like one: 429). An API key cannot call this (403)."""
    await auth.change_password(claims, body.current_password, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=Me, responses=PROBLEM_RESPONSES(401), summary="Who am I", operation_id="auth_me")
async def me(claims: CurrentClaims, auth: AuthServiceDep) -> Me:
    """The account behind the credential (a session's access token or an API key): username, email,
    tenant id and creation time."""
    user = await auth.get_user(claims.tenant_id)
    return Me(
        username=user.username,
        email=user.email,
        tenant_id=user.tenant_id,
        is_active=user.is_active,
        created_at=user.created_at,
    )
