"""Request and response bodies of /auth."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from app.platform.jsonutil import Timestamp
from app.platform.security import MAX_PASSWORD_BYTES, SCOPES

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


def _text(field: str) -> Any:
    def check(value: str) -> str:
        if "\x00" in value:
            raise ValueError(f"{field} must not contain a NUL character")
        try:
            value.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate (JSON \ud800) is no text
            raise ValueError(f"{field} must be valid Unicode text") from exc
        return value

    return AfterValidator(check)


MAX_API_KEY_EXPIRES_IN = 10 * 365 * 86400  # ten years


def _scope(value: str) -> str:
    if value not in SCOPES:
        raise ValueError(f"unknown scope {value[:32]!r}; scopes are {', '.join(SCOPES)}")
    return value


class ApiKeyCreate(BaseModel):
    """A new API key: what it may do (scopes), where (buckets, key_prefix) and for how long."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: Annotated[str, Field(min_length=1, max_length=100), _text("name")]
    scopes: list[Annotated[str, Field(max_length=32), AfterValidator(_scope)]] = Field(
        min_length=1, max_length=16, description=f"What the key may do: {', '.join(SCOPES)}"
    )
    buckets: list[Annotated[str, Field(min_length=1, max_length=256), _text("buckets")]] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=100,
        description='KV and object buckets the key may use; ["*"] (the default) = every bucket',
    )
    key_prefix: Annotated[str, Field(max_length=256), _text("key_prefix")] = Field(
        default="", description="KV keys and object names must start with it (also narrows listings and watches)"
    )
    expires_in: int | None = Field(
        default=None, ge=1, le=MAX_API_KEY_EXPIRES_IN, description="Seconds until the key expires; none: never"
    )


class ApiKeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    buckets: list[str]
    key_prefix: str
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None = Field(
        default=None, description="When it was last used (updated at most once a minute)"
    )


class ApiKeyCreated(BaseModel):
    """The new key; ``key`` is the secret, shown only in this response."""

    id: str
    name: str
    key: str = Field(description="The secret (kvs_...): send it as `Authorization: Bearer <key>`. Shown only once")
    scopes: list[str]
    buckets: list[str]
    key_prefix: str
    created_at: Timestamp
    expires_at: Timestamp | None


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
