"""Every Redis access of auth: user records and the username/email claims, the login throttles
(login_attempt.lua: failed logins per username and client address and per address; auth_rate.lua: the
address's budget of anonymous /auth requests), refresh tokens and their rotation (refresh_rotate.lua),
ended sessions and the stream that tells every API process about them. This module is the only caller
of those scripts.

A username's claim has the ``{username}`` hash tag; every throttle counter of a client address has the
``{address}`` tag (one slot, one script); a user record and its refresh tokens live in the tenant's slot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final, cast

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.typing import EncodableT, FieldT

from app.auth.model import User
from app.platform import keyspace as keys
from app.platform.errors import InvalidToken, KVStoreError, TokenReused, TooManyApiKeys
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptError, Scripts, domain_error

LOGIN_ATTEMPT: Final = LuaScript("login_attempt")
AUTH_RATE: Final = LuaScript("auth_rate")
REFRESH_ROTATE: Final = LuaScript("refresh_rotate")
API_KEY_CREATE: Final = LuaScript("api_key_create")


@dataclass(frozen=True, slots=True)
class Revocation:
    """One entry of the session-revocation stream: a session ended (``session_id``), every session
    of the tenant begun before ``before_ms`` except ``keep`` ended, or an API key was revoked
    (``key_id``)."""

    entry_id: str
    at_ms: int  # when it was written (the entry id's time)
    tenant_id: str
    session_id: str | None = None
    before_ms: int = 0
    keep: str = ""
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionCutoff:
    """What Redis says of one session, for a process that cannot trust its copy of the stream."""

    family_revoked: bool
    before_ms: int
    keep: str


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

    async def set_password_hash(self, tenant_id: str, password_hash: str) -> None:
        await self._redis.hset(KeySchema(tenant_id).user(), "password_hash", password_hash)

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

    async def rotate_refresh_token(
        self, tenant_id: str, jti: str, family: str, family_started_ms: int, new_jti: str, ttl_seconds: int
    ) -> str:
        """Spend token ``jti`` and make ``new_jti`` its active successor; returns the username ('' if
        the user is gone). Raises TokenReused for a spent token (its family is revoked from now on)
        and InvalidToken for a revoked or unknown one, or one of a session a cut-off ended."""
        schema = KeySchema(tenant_id)
        try:
            (username,) = await self._scripts.call(
                REFRESH_ROTATE,
                keys=[
                    schema.refresh_token(jti),
                    schema.refresh_family(family),
                    schema.refresh_token(new_jti),
                    schema.user(),
                    schema.sessions_revoked(),
                ],
                args=[family, ttl_seconds, family_started_ms],
            )
        except ScriptError as error:
            raise domain_error(error, _refresh_refusal) from None
        return text(username)

    async def revoke_family(
        self, tenant_id: str, family: str, ttl_seconds: int, *, stream_ttl_seconds: int
    ) -> str | None:
        """Revoke every token of ``family`` (a session) and tell every API process; returns the
        username (None if the user is gone)."""
        schema = KeySchema(tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:  # one round trip (two slots on a cluster)
            pipe.set(schema.refresh_family(family), "revoked", ex=ttl_seconds)
            pipe.hget(schema.user(), "username")
            _announce(pipe, {"tenant": tenant_id, "sid": family}, stream_ttl_seconds)
            _, username, _ = await pipe.execute()
        return text(username) if username else None

    async def announce_revoked_family(self, tenant_id: str, family: str, *, stream_ttl_seconds: int) -> None:
        """Tell every API process that ``family`` ended (its marker is written already)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            _announce(pipe, {"tenant": tenant_id, "sid": family}, stream_ttl_seconds)
            await pipe.execute()

    async def cut_off_sessions(
        self, tenant_id: str, before_ms: int, keep: str, ttl_seconds: int, *, stream_ttl_seconds: int
    ) -> None:
        """End every session of the tenant begun before ``before_ms`` except ``keep`` ('' for none),
        and tell every API process."""
        key = KeySchema(tenant_id).sessions_revoked()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"before": before_ms, "keep": keep})
            pipe.expire(key, ttl_seconds)
            _announce(pipe, {"tenant": tenant_id, "before": before_ms, "keep": keep}, stream_ttl_seconds)
            await pipe.execute()

    async def session_cutoff(self, tenant_id: str, family: str | None) -> SessionCutoff:
        """Redis's word on one session, in one round trip (same slot)."""
        schema = KeySchema(tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(schema.refresh_family(family or "-"))
            pipe.hmget(schema.sessions_revoked(), ["before", "keep"])
            marker, (before, keep) = await pipe.execute()
        return SessionCutoff(
            family_revoked=text(marker) == "revoked" if marker else False,
            before_ms=int(before) if before else 0,
            keep=text(keep) if keep else "",
        )

    # -- API keys (app/auth/api_keys.py) ---------------------------------------------------------

    async def create_api_key(self, tenant_id: str, key_id: str, record: str, maximum: int, now_ms: int) -> None:
        """Store a key's record; TooManyApiKeys when the tenant has ``maximum`` unexpired keys."""
        schema = KeySchema(tenant_id)
        try:
            await self._scripts.call(
                API_KEY_CREATE, keys=[schema.api_keys(), schema.api_keys_used()], args=[key_id, record, maximum, now_ms]
            )
        except ScriptError as error:
            raise TooManyApiKeys(error.detail) from None

    async def api_key_record(self, tenant_id: str, key_id: str) -> str | None:
        raw = await self._redis.hget(KeySchema(tenant_id).api_keys(), key_id)
        return text(raw) if raw else None

    async def api_key_records(self, tenant_id: str) -> tuple[dict[str, str], dict[str, int]]:
        """Every key record of the tenant and when each was last used (one round trip, one slot)."""
        schema = KeySchema(tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(schema.api_keys())
            pipe.hgetall(schema.api_keys_used())
            records, used = await pipe.execute()
        return (
            {text(k): text(v) for k, v in records.items()},
            {text(k): int(v) for k, v in used.items()},
        )

    async def delete_api_key(self, tenant_id: str, key_id: str, *, stream_ttl_seconds: int) -> bool:
        """Delete a key and tell every API process; False when the tenant has no such key."""
        schema = KeySchema(tenant_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hdel(schema.api_keys(), key_id)
            pipe.hdel(schema.api_keys_used(), key_id)
            deleted, _ = await pipe.execute()
        if not deleted:  # an unknown id adds nothing to the stream
            return False
        async with self._redis.pipeline(transaction=False) as pipe:
            _announce(pipe, {"tenant": tenant_id, "kid": key_id}, stream_ttl_seconds)
            await pipe.execute()
        return True

    async def touch_api_key(self, tenant_id: str, key_id: str, now_ms: int) -> None:
        """Record that the key was used (callers write at most once a minute per key)."""
        await self._redis.hset(KeySchema(tenant_id).api_keys_used(), key_id, now_ms)


def _announce(pipe: Pipeline | ClusterPipeline, fields: dict[FieldT, EncodableT], stream_ttl_seconds: int) -> None:
    """Queue the XADD of one revocation, trimming entries older than any access token they could end."""
    min_id = int(time.time() * 1000) - stream_ttl_seconds * 1000
    pipe.xadd(keys.SESSION_REVOCATIONS, fields, minid=max(min_id, 0), approximate=False)


async def read_revocations(
    redis: AsyncDataRedis, after: str, block_ms: int | None, count: int = 1000
) -> list[Revocation]:
    """Revocations after stream id ``after`` ('0': all that are kept), waiting up to ``block_ms``."""
    reply = await redis.xread({keys.SESSION_REVOCATIONS: after}, count=count, block=block_ms)
    entries: list[Revocation] = []
    for _stream, items in cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply or []):
        for raw_id, raw_fields in items:
            entry_id = text(raw_id)
            fields = {text(name): text(value) for name, value in raw_fields.items()}
            entries.append(
                Revocation(
                    entry_id=entry_id,
                    at_ms=int(entry_id.partition("-")[0]),
                    tenant_id=fields.get("tenant", ""),
                    session_id=fields.get("sid"),
                    before_ms=int(fields.get("before") or 0),
                    keep=fields.get("keep", ""),
                    key_id=fields.get("kid"),
                )
            )
    return entries


def _refresh_refusal(error: ScriptError) -> KVStoreError:
    if error.code == "refresh_reused":
        return TokenReused("Refresh token was already used; every token of its session is revoked")
    return InvalidToken("Refresh token is revoked or unknown")
