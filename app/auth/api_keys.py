"""Scoped API keys: long-lived bearer credentials of a tenant, narrowed to scopes, buckets and a key prefix.

A key is ``kvs_`` + the tenant id (32 hex digits) + the key id (16 hex digits) + 43 random characters
(256 bits). Redis keeps only the SHA-256 of the whole key in the tenant's hash ``t:{tid}:api_keys``
(the secret has too much entropy for a slow hash to matter), next to its name, scopes, buckets,
key prefix and expiry; the secret is shown once, when the key is created.

Verifying a key costs no Redis round trip in the steady state: each API process caches the records of
the keys it verified (at most ``CACHE_SECONDS``, then it reads the record again) and follows the
revocation stream of SessionRevocations (``auth:session_revocations``, a ``kid`` entry per deleted
key), so a revoked key is refused on every process within about a second. While that copy is not
current (Redis unreachable, the process just started) every key request reads its record from Redis:
a key is never accepted on a stale copy. ``last_used_at`` is written at most once a minute per key
and process, after the request, off its path.

Keys are separate credentials, like GitHub's personal access tokens: logout-all and a password change
end sessions, not keys. Deleting a key ends the watch streams it opened (``session_ended``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from app.auth.sessions import SLACK_SECONDS, SessionRevocations
from app.auth.store import AuthStore, Revocation
from app.config import Settings
from app.platform.context import audit_note
from app.platform.errors import ApiKeyNotFound, InsufficientScope, InvalidInput, InvalidToken
from app.platform.redis import REDIS_ERRORS
from app.platform.security import ALL_SCOPES, SCOPES, AccessClaims

logger = logging.getLogger("app.auth.api_keys")

KEY_PREFIX = "kvs_"
KEY_RE = re.compile(r"kvs_([0-9a-f]{32})([0-9a-f]{16})([A-Za-z0-9_-]{43})")
CACHE_SECONDS = 30.0  # a cached record is read again after this (always shorter than the revocation memory)
CACHE_SIZE = 10_000
TOUCH_EVERY_SECONDS = 60.0  # last_used_at is written at most this often per key and process
ALL_BUCKETS = "*"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A key as stored (without its secret)."""

    id: str
    name: str
    sha256: str
    scopes: tuple[str, ...]
    buckets: tuple[str, ...]  # ("*",) = every bucket
    key_prefix: str
    created_ms: int
    expires_ms: int | None
    created_by: str
    last_used_ms: int | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "name": self.name,
                "sha256": self.sha256,
                "scopes": list(self.scopes),
                "buckets": list(self.buckets),
                "key_prefix": self.key_prefix,
                "created_ms": self.created_ms,
                "expires_ms": self.expires_ms,
                "created_by": self.created_by,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str, last_used_ms: int | None = None) -> ApiKeyRecord:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            sha256=str(data["sha256"]),
            scopes=tuple(data["scopes"]),
            buckets=tuple(data["buckets"]),
            key_prefix=str(data.get("key_prefix", "")),
            created_ms=int(data["created_ms"]),
            expires_ms=None if data.get("expires_ms") is None else int(data["expires_ms"]),
            created_by=str(data.get("created_by", "")),
            last_used_ms=last_used_ms,
        )

    def expired(self, now_ms: int) -> bool:
        return self.expires_ms is not None and self.expires_ms <= now_ms

    def principal(self, tenant_id: str) -> AccessClaims:
        return AccessClaims(
            tenant_id=tenant_id,
            username=self.created_by,
            jti=self.id,
            expires_at=float("inf") if self.expires_ms is None else self.expires_ms / 1000,
            scopes=frozenset(self.scopes),
            buckets=None if ALL_BUCKETS in self.buckets else frozenset(self.buckets),
            key_prefix=self.key_prefix,
            key_id=self.id,
            key_name=self.name,
        )


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: ApiKeyRecord
    key: str


class ApiKeys:
    """Creates, lists, revokes and verifies the API keys; this process's cache of verified keys."""

    def __init__(self, store: AuthStore, sessions: SessionRevocations, settings: Settings) -> None:
        self._store = store
        self._sessions = sessions
        self.max_per_tenant = settings.max_api_keys_per_tenant
        # verified key -> (principal, monotonic time its record was read from Redis)
        self._cache: OrderedDict[str, tuple[AccessClaims, float]] = OrderedDict()
        self._digests: dict[str, str] = {}  # key id -> its cache entry (the key)
        self._touched: dict[str, float] = {}  # key id -> monotonic time last_used_at was last written
        self._background: set[asyncio.Task[None]] = set()
        sessions.on_key_revoked = self.forget

    # -- verification (every request with a kvs_ bearer) -----------------------------------------

    async def verify(self, key: str) -> AccessClaims:
        """The principal of a valid, unexpired, unrevoked key; InvalidToken (401) otherwise."""
        cached = self._cache.get(key)  # keyed by the key itself, as TokenService caches tokens
        if (
            cached is not None
            and self._sessions.current
            and time.monotonic() - cached[1] < CACHE_SECONDS
            and cached[0].key_id not in self._sessions.revoked_keys
        ):
            principal = cached[0]
        else:
            match = KEY_RE.fullmatch(key)
            if match is None:
                raise InvalidToken("API key is invalid")
            tenant_id, key_id = str(uuid.UUID(match.group(1))), match.group(2)
            read_at = time.monotonic()
            raw = await self._store.api_key_record(tenant_id, key_id)
            record = ApiKeyRecord.from_json(raw) if raw else None
            if record is None or not hmac.compare_digest(record.sha256, digest(key)):
                raise InvalidToken("API key is invalid or revoked")
            principal = record.principal(tenant_id)
            if key_id not in self._sessions.revoked_keys:
                self._remember(key, principal, read_at)
        if principal.expires_at <= time.time():
            raise InvalidToken("API key has expired")
        self._touch(principal)
        return principal

    def _remember(self, key: str, principal: AccessClaims, read_at: float) -> None:
        self._cache[key] = (principal, read_at)
        self._cache.move_to_end(key)
        assert principal.key_id is not None
        self._digests[principal.key_id] = key
        while len(self._cache) > CACHE_SIZE:
            _, (old, _) = self._cache.popitem(last=False)
            self._digests.pop(old.key_id or "", None)

    def forget(self, key_id: str) -> None:
        """The key was revoked: drop it from the cache (called by the revocation stream's follower)."""
        cached_key = self._digests.pop(key_id, None)
        if cached_key is not None:
            self._cache.pop(cached_key, None)
        self._touched.pop(key_id, None)

    def _touch(self, principal: AccessClaims) -> None:
        """Write last_used_at now and then (at most once a minute per key), in the background."""
        key_id = principal.key_id
        assert key_id is not None
        now = time.monotonic()
        if now - self._touched.get(key_id, float("-inf")) < TOUCH_EVERY_SECONDS:
            return
        self._touched[key_id] = now
        if len(self._touched) > CACHE_SIZE:
            self._touched.pop(next(iter(self._touched)))
        task = asyncio.get_running_loop().create_task(self._write_touch(principal.tenant_id, key_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_touch(self, tenant_id: str, key_id: str) -> None:
        try:
            await self._store.touch_api_key(tenant_id, key_id, int(time.time() * 1000))
        except REDIS_ERRORS as exc:  # only a statistic: never fails a request
            logger.warning("could not record an API key's last use (%s)", exc.__class__.__name__)

    async def alive(self, tenant_id: str, key_id: str) -> bool:
        """Whether the key exists, is unexpired and unrevoked (credential_alive)."""
        if key_id in self._sessions.revoked_keys:
            return False
        cached_key = self._digests.get(key_id)
        cached = self._cache.get(cached_key) if cached_key else None
        if cached is not None and self._sessions.current and time.monotonic() - cached[1] < CACHE_SECONDS:
            return cached[0].expires_at > time.time()
        raw = await self._store.api_key_record(tenant_id, key_id)
        return raw is not None and not ApiKeyRecord.from_json(raw).expired(int(time.time() * 1000))

    # -- management --------------------------------------------------------------------------------

    async def create(
        self,
        creator: AccessClaims,
        *,
        name: str,
        scopes: list[str],
        buckets: list[str],
        key_prefix: str,
        expires_in: int | None,
    ) -> CreatedKey:
        """A new key no wider than ``creator`` (scopes, buckets, key prefix, expiry)."""
        unknown = sorted(set(scopes) - ALL_SCOPES)
        if unknown:
            raise InvalidInput(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
        now_ms = int(time.time() * 1000)
        expires_ms = None if expires_in is None else now_ms + expires_in * 1000
        if creator.is_api_key:
            wider = sorted(set(scopes) - creator.scopes)
            if wider:
                raise InsufficientScope(f"a key cannot grant scope {wider[0]!r}, which it does not hold", wider[0])
            if creator.buckets is not None and (ALL_BUCKETS in buckets or not set(buckets) <= creator.buckets):
                raise InsufficientScope("a key cannot grant buckets it may not use itself", "admin")
            if not key_prefix.startswith(creator.key_prefix):
                raise InsufficientScope(
                    f"the key_prefix must start with this key's own prefix {creator.key_prefix!r}", "admin"
                )
            if creator.expires_at != float("inf"):
                creator_ms = int(creator.expires_at * 1000)
                if expires_ms is None or expires_ms > creator_ms:
                    raise InsufficientScope("a key cannot outlive the key that creates it; send expires_in", "admin")
        tenant_id = creator.tenant_id
        key_id = secrets.token_hex(8)
        key = f"{KEY_PREFIX}{uuid.UUID(tenant_id).hex}{key_id}{secrets.token_urlsafe(32)}"
        ordered_scopes = tuple(scope for scope in SCOPES if scope in set(scopes))
        record = ApiKeyRecord(
            id=key_id,
            name=name,
            sha256=digest(key),
            scopes=ordered_scopes,
            buckets=(ALL_BUCKETS,) if ALL_BUCKETS in buckets else tuple(sorted(set(buckets))),
            key_prefix=key_prefix,
            created_ms=now_ms,
            expires_ms=expires_ms,
            created_by=creator.username,
        )
        await self._store.create_api_key(tenant_id, key_id, record.to_json(), self.max_per_tenant, now_ms)
        audit_note(key=name)
        return CreatedKey(record=record, key=key)

    async def list(self, tenant_id: str) -> list[ApiKeyRecord]:
        records, used = await self._store.api_key_records(tenant_id)
        keys = [ApiKeyRecord.from_json(raw, used.get(key_id)) for key_id, raw in records.items()]
        return sorted(keys, key=lambda record: (record.created_ms, record.id))

    async def revoke(self, tenant_id: str, key_id: str) -> None:
        """Delete the key; every API process refuses it within a second (this one at once)."""
        audit_note(key=key_id)
        if not re.fullmatch(r"[0-9a-f]{16}", key_id) or not await self._store.delete_api_key(
            tenant_id, key_id, stream_ttl_seconds=self._sessions.stream_ttl_seconds
        ):
            raise ApiKeyNotFound(f"no API key {key_id[:40]!r}")
        self._sessions.apply(
            [Revocation(entry_id="", at_ms=int(time.time() * 1000), tenant_id=tenant_id, key_id=key_id)]
        )

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


async def credential_alive(
    sessions: SessionRevocations, api_keys: ApiKeys, tenant_id: str, credential: str, issued_s: float
) -> bool:
    """Whether the credential that signed something (a presigned URL) at ``issued_s`` (epoch seconds)
    still stands; ``tenant_id`` is the signer's tenant.

    ``k:<API key id>``: the key is neither revoked nor expired (every process hears of a revocation
    within a second; a key verified here in the last ``CACHE_SECONDS`` is answered from memory while
    the copy is current). ``s:<session id>``: the login session has not ended (logout, logout-all, a
    password change, a replayed refresh token). Every ended session is in this process's copy of the
    revocation stream for one access-token lifetime after it ended, so for something signed within
    that window (less the clock slack) the copy answers; older signatures may belong to a session that
    ended before the copy's window, so Redis is asked (one round trip)."""
    kind, _, ident = credential.partition(":")
    if kind == "k":
        return await api_keys.alive(tenant_id, ident)
    if kind != "s":
        return False
    if sessions.credential_ended(tenant_id, credential):
        return False
    recent = (time.time() - issued_s) * 1000 < sessions.keep_ms - SLACK_SECONDS * 1000
    if recent and sessions.current:
        return True
    return not await sessions.ended_in_redis(tenant_id, ident or None)
