"""Every Redis access of auth: user records and the username/email claims, the login throttles
(login_attempt.lua: failed logins per username and client address and per address; auth_rate.lua: the
address's budget of anonymous /auth requests), refresh tokens and their rotation (refresh_rotate.lua).
This module is the only caller of those scripts.

A username's claim has the ``{username}`` hash tag; every throttle counter of a client address has the
``{address}`` tag (one slot, one script); a user record and its refresh tokens live in the tenant's slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from app.auth.model import User
from app.platform import keyspace as keys
from app.platform.errors import InvalidToken, KVStoreError, TokenReused
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptError, Scripts, domain_error

LOGIN_ATTEMPT: Final = LuaScript("login_attempt")
AUTH_RATE: Final = LuaScript("auth_rate")
REFRESH_ROTATE: Final = LuaScript("refresh_rotate")


@dataclass(frozen=True, slots=True)
class LoginReservation:
    """A login attempt reserved before the password is checked (counted as a failure until it is
    given back), or refused with the seconds until the window that refused it ends."""

    granted: bool
    retry_after: int


class AuthStore:
    """The auth side of the data Redis, on the API's client."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    # -- users -----------------------------------------------------------------------------------

    async def create_user(
        self, tenant_id: str, *, username: str, email: str, password_hash: str, created_at: datetime
    ) -> None:
        """Write the user record of a new tenant (it is claimed separately)."""
        await self._redis.hset(
            KeySchema(tenant_id).user(),
            mapping={
                "username": username,
                "email": email,
                "password_hash": password_hash,
                "created_at": created_at.isoformat(),
                "is_active": "1",
            },
        )

    async def claim_username(self, username: str, tenant_id: str) -> bool:
        """Claim ``username`` for the tenant; False when another tenant has it."""
        return bool(await self._redis.set(keys.username_claim(username), tenant_id, nx=True))

    async def claim_email(self, email: str, tenant_id: str) -> bool:
        """Claim ``email`` for the tenant; False when another tenant has it."""
        return bool(await self._redis.set(keys.email_claim(email), tenant_id, nx=True))

    async def delete_user(self, tenant_id: str, claimed_username: str | None = None) -> None:
        """Undo a registration: the user record, and the username claim it made."""
        names = [keys.username_claim(claimed_username)] if claimed_username else []
        await self._redis.delete(*names, KeySchema(tenant_id).user())

    async def user(self, tenant_id: str) -> User | None:
        raw = await self._redis.hgetall(KeySchema(tenant_id).user())
        if not raw:
            return None
        record = {text(name): text(value) for name, value in raw.items()}
        return User(
            tenant_id=tenant_id,
            username=record["username"],
            email=record["email"],
            is_active=record.get("is_active") == "1",
            created_at=datetime.fromisoformat(record["created_at"]),
        )

    async def password_hash(self, tenant_id: str) -> str | None:
        raw = await self._redis.hget(KeySchema(tenant_id).user(), "password_hash")
        return text(raw) if raw else None

    # -- logins ----------------------------------------------------------------------------------

    async def tenant_of(self, username: str) -> str | None:
        """The tenant that claimed ``username``, None when nobody did."""
        raw = await self._redis.get(keys.username_claim(username))
        return text(raw) if raw else None

    async def reserve_login(
        self, username: str, address: str, max_per_username: int, max_per_address: int, window_seconds: int
    ) -> LoginReservation:
        """Count one login attempt of ``username`` from client ``address`` as a failure, unless either
        limit is reached already (then nothing is counted): decided and counted in one step."""
        granted, retry_after = await self._scripts.call(
            LOGIN_ATTEMPT,
            keys=[keys.login_failures(username, address), keys.login_address_failures(address)],
            args=["reserve", max_per_username, max_per_address, window_seconds],
        )
        return LoginReservation(granted=bool(int(granted)), retry_after=int(retry_after))

    async def release_login(self, username: str, address: str) -> None:
        """A successful login: forget the username's failures from ``address`` and give the address
        its reservation back."""
        await self._scripts.call(
            LOGIN_ATTEMPT,
            keys=[keys.login_failures(username, address), keys.login_address_failures(address)],
            args=["release"],
        )

    async def take_anonymous(self, address: str, interval_ms: float, burst: int) -> int | None:
        """Spend one anonymous /auth request of ``address``: None, or the ms until one is allowed."""
        granted, wait_ms = await self._scripts.call(
            AUTH_RATE, keys=[keys.auth_rate(address)], args=[interval_ms, burst]
        )
        return None if int(granted) else int(wait_ms)

    # -- refresh tokens --------------------------------------------------------------------------

    async def save_refresh_token(self, tenant_id: str, jti: str, family: str, ttl_seconds: int) -> None:
        """An active refresh token of ``family``, kept as long as it is valid."""
        token_key = KeySchema(tenant_id).refresh_token(jti)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(token_key, mapping={"family": family, "state": "active"})
            pipe.expire(token_key, ttl_seconds)
            await pipe.execute()

    async def rotate_refresh_token(self, tenant_id: str, jti: str, family: str, new_jti: str, ttl_seconds: int) -> str:
        """Spend token ``jti`` and make ``new_jti`` its active successor; returns the username ('' if
        the user is gone). Raises TokenReused for a spent token (its family is revoked from now on)
        and InvalidToken for a revoked or unknown one."""
        schema = KeySchema(tenant_id)
        try:
            (username,) = await self._scripts.call(
                REFRESH_ROTATE,
                keys=[
                    schema.refresh_token(jti),
                    schema.refresh_family(family),
                    schema.refresh_token(new_jti),
                    schema.user(),
                ],
                args=[family, ttl_seconds],
            )
        except ScriptError as error:
            raise domain_error(error, _refresh_refusal) from None
        return text(username)

    async def revoke_family(self, tenant_id: str, family: str, ttl_seconds: int) -> str | None:
        """Revoke every token of ``family`` (a session); returns the username (None if the user is gone)."""
        schema = KeySchema(tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:  # one slot: one round trip
            pipe.set(schema.refresh_family(family), "revoked", ex=ttl_seconds)
            pipe.hget(schema.user(), "username")
            _, username = await pipe.execute()
        return text(username) if username else None


def _refresh_refusal(error: ScriptError) -> KVStoreError:
    if error.code == "refresh_reused":
        return TokenReused("Refresh token was already used; every token of its session is revoked")
    return InvalidToken("Refresh token is revoked or unknown")
