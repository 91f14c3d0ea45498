"""Registration, login, token rotation and the current user; no HTTP in here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from app.config import Settings
from app.platform import keyspace as keys
from app.platform.context import audit_note
from app.platform.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    LoginThrottled,
    TokenReused,
    UsernameTaken,
)
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts
from app.platform.security import PasswordHasher, TokenService


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    tenant_id: str
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class User:
    tenant_id: str
    username: str
    email: str
    is_active: bool
    created_at: datetime


class AuthService:
    def __init__(
        self,
        redis: AsyncDataRedis,
        scripts: Scripts,
        hasher: PasswordHasher,
        tokens: TokenService,
        settings: Settings,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._hasher = hasher
        self._tokens = tokens
        self._settings = settings

    async def _issue(self, tenant_id: str, username: str, family: str | None = None) -> IssuedTokens:
        family = family or uuid.uuid4().hex
        refresh, jti = self._tokens.create_refresh_token(tenant_id, family)
        schema = KeySchema(tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(schema.refresh_token(jti), mapping={"family": family, "state": "active"})
            pipe.expire(schema.refresh_token(jti), self._tokens.refresh_ttl)
            await pipe.execute()
        return self._pair(tenant_id, username, refresh)

    def _pair(self, tenant_id: str, username: str, refresh: str) -> IssuedTokens:
        return IssuedTokens(
            tenant_id=tenant_id,
            access_token=self._tokens.create_access_token(tenant_id, username),
            refresh_token=refresh,
            expires_in=self._tokens.access_ttl,
        )

    async def register(self, username: str, email: str, password: str) -> IssuedTokens:
        """Create a tenant; the username and email are claimed atomically (SET NX)."""
        audit_note(username=username)
        password_hash = await self._hasher.hash(password)
        tenant_id = str(uuid.uuid4())
        email = email.lower()
        schema = KeySchema(tenant_id)
        # The user record goes first: a crash before the claims leaves only an orphan
        # record that nothing points at, never a claimed name without a user.
        await self._redis.hset(
            schema.user(),
            mapping={
                "username": username,
                "email": email,
                "password_hash": password_hash,
                "created_at": datetime.now(UTC).isoformat(),
                "is_active": "1",
            },
        )
        if not await self._redis.set(keys.username_claim(username), tenant_id, nx=True):
            await self._redis.delete(schema.user())
            raise UsernameTaken(f"Username {username!r} is already registered")
        if not await self._redis.set(keys.email_claim(email), tenant_id, nx=True):
            await self._redis.delete(keys.username_claim(username), schema.user())
            raise EmailTaken("Email is already registered")
        audit_note(tenant_id=tenant_id)
        return await self._issue(tenant_id, username)

    async def login(self, username: str, password: str) -> IssuedTokens:
        """Tokens for valid credentials; the same 401 for an unknown user and a wrong password."""
        audit_note(action="auth.login", username=username)  # also for the OAuth2 form of /auth/token
        failures_key = keys.login_failures(username)
        # The claim and the failure counter share the {username} hash tag: one round trip.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.username_claim(username))
            pipe.get(failures_key)
            pipe.ttl(failures_key)
            tenant_raw, failures_raw, failures_ttl = await pipe.execute()
        # A failed login of an existing user is an event of that user's tenant.
        audit_note(tenant_id=tenant_raw.decode() if tenant_raw else None)
        if failures_raw is not None and int(failures_raw) >= self._settings.login_max_failures:
            raise LoginThrottled(
                f"Too many failed logins for this username; try again in {max(failures_ttl, 1)} s",
                retry_after=max(int(failures_ttl), 1),
            )
        password_hash = None
        tenant_id = tenant_raw.decode() if tenant_raw else None
        if tenant_id is not None:
            raw = await self._redis.hget(KeySchema(tenant_id).user(), "password_hash")
            password_hash = raw.decode() if raw else None
        if not await self._hasher.verify(password, password_hash) or tenant_id is None:
            await self._scripts.login_failure(keys=[failures_key], args=[self._settings.login_failure_window_seconds])
            raise InvalidCredentials("Incorrect username or password")
        await self._redis.delete(failures_key)
        return await self._issue(tenant_id, username)

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Spend ``refresh_token`` for a new pair; replaying a spent one revokes its family."""
        claims = self._tokens.verify_refresh_token(refresh_token)
        audit_note(tenant_id=claims.tenant_id)
        schema = KeySchema(claims.tenant_id)
        new_refresh, new_jti = self._tokens.create_refresh_token(claims.tenant_id, claims.family)
        outcome = await self._scripts.refresh_rotate(
            keys=[
                schema.refresh_token(claims.jti),
                schema.refresh_family(claims.family),
                schema.refresh_token(new_jti),
                schema.user(),
            ],
            args=[claims.family, self._tokens.refresh_ttl],
        )
        if outcome[0] == b"reused":
            raise TokenReused("Refresh token was already used; every token of its session is revoked")
        if outcome[0] != b"ok":
            raise InvalidToken("Refresh token is revoked or unknown")
        username = outcome[1].decode()
        audit_note(username=username or None)
        return self._pair(claims.tenant_id, username, new_refresh)

    async def logout(self, refresh_token: str) -> str:
        """Revoke the session (token family) of ``refresh_token``; returns the tenant id."""
        claims = self._tokens.verify_refresh_token(refresh_token)
        audit_note(tenant_id=claims.tenant_id)
        schema = KeySchema(claims.tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:  # one slot: one round trip
            pipe.set(schema.refresh_family(claims.family), "revoked", ex=self._tokens.refresh_ttl)
            pipe.hget(schema.user(), "username")  # for the audit event
            _, username = await pipe.execute()
        audit_note(username=username.decode() if username else None)
        return claims.tenant_id

    async def get_user(self, tenant_id: str) -> User:
        raw = await self._redis.hgetall(KeySchema(tenant_id).user())
        if not raw:
            raise InvalidToken("The account of this token no longer exists")
        record = {k.decode(): v.decode() for k, v in raw.items()}
        return User(
            tenant_id=tenant_id,
            username=record["username"],
            email=record["email"],
            is_active=record.get("is_active") == "1",
            created_at=datetime.fromisoformat(record["created_at"]),
        )
