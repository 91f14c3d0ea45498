"""Request and response bodies of /auth."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from app.platform.jsonutil import Timestamp
from app.platform.security import MAX_PASSWORD_BYTES

USERNAME_RE = re.compile(r"^[a-z0-9_.-]{3,32}$")


def _username(value: str) -> str:
    # ASCII first: str.lower() maps some non-ASCII letters onto ASCII ones (KELVIN SIGN -> "k").
    value = value.lower() if value.isascii() else value
    if not USERNAME_RE.fullmatch(value):
        raise ValueError("username must be 3-32 characters of a-z, 0-9, '_', '.' or '-'")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("password must not contain a NUL character (bcrypt cannot hash it)")
    return value


def _new_password(value: str) -> str:
    _no_nul(value)
    size = len(value.encode())
    if size < 8:
        raise ValueError("password must be at least 8 bytes")
    if size > MAX_PASSWORD_BYTES:
        raise ValueError(f"password must be at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)")
    if not (re.search(r"[A-Z]", value) and re.search(r"[a-z]", value) and re.search(r"[0-9]", value)):
        raise ValueError("password needs an upper-case letter, a lower-case letter and a digit")
    return value


def _login_password(value: str) -> str:
    _no_nul(value)
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password must be at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)")
    return value


Username = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_username)]
NewPassword = Annotated[str, Field(max_length=1024), AfterValidator(_new_password)]
LoginPassword = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_login_password)]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    username: Username
    email: EmailStr
    password: NewPassword


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    username: Username
    password: LoginPassword


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no integer
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class RegisterResponse(TokenPair):
    tenant_id: str


class Me(BaseModel):
    username: str
    email: str
    tenant_id: str
    is_active: bool
    created_at: Timestamp


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: JSON true is no string
    current_password: LoginPassword
    new_password: NewPassword
