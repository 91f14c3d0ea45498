"""Password hashing (bcrypt through passlib) and JWT access/refresh tokens."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from passlib.context import CryptContext

from app.config import Settings
from app.platform.context import client_ip_var
from app.platform.errors import InvalidInput, InvalidToken
from app.platform.gate import FairGate

ALGORITHM = "HS256"
MAX_PASSWORD_BYTES = 72  # bcrypt ignores everything past 72 bytes; we refuse instead
_T = TypeVar("_T")


def _lower_thread_priority(by: int) -> None:
    """Make the calling thread yield the CPU to the process's other threads (Linux: a thread's nice
    value is its own; elsewhere this would reach the whole process, so it is left alone)."""
    if sys.platform != "linux" or by <= 0:
        return
    try:
        niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + by)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except OSError:  # pragma: no cover - a sandbox that forbids it: normal priority
        pass


@functools.cache
def _dummy_hash(rounds: int) -> str:
    """A hash of no one's password at ``rounds``, made once per process (not a secret)."""
    return str(CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds).hash("not-a-real-password-0"))


class PasswordHasher:
    """bcrypt with the configured cost, run in threads of its own so the event loop stays free.

    At most ``max_concurrency`` hashes and verifications run at once in the process (the rest wait,
    served round-robin by client address: app/platform/gate.py), in a pool of that many threads whose
    CPU priority is ``niceness`` lower than the event loop's: a flood of logins neither takes every
    core from the event loop nor any thread of its default executor."""

    def __init__(self, rounds: int, max_concurrency: int = 2, niceness: int = 0) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        # Verified against when the user does not exist, so both failures take as long.
        self._dummy_hash = _dummy_hash(rounds)
        self.gate = FairGate(max_concurrency)
        self._threads = ThreadPoolExecutor(
            max_concurrency, thread_name_prefix="bcrypt", initializer=_lower_thread_priority, initargs=(niceness,)
        )

    def close(self) -> None:
        """Let the bcrypt threads end (at shutdown: nothing runs bcrypt any more)."""
        self._threads.shutdown(wait=False)

    async def _run(self, func: Callable[..., _T], *args: Any) -> _T:
        async with self.gate.slot(client_ip_var.get() or ""):
            return await asyncio.get_running_loop().run_in_executor(self._threads, func, *args)

    async def hash(self, password: str) -> str:
        if "\x00" in password:  # bcrypt refuses it; the request schemas do first
            raise InvalidInput("password must not contain a NUL character")
        return await self._run(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        if "\x00" in password:  # no stored password holds one (bcrypt refuses it)
            return False
        if password_hash is None:
            await self._run(self._context.verify, password, self._dummy_hash)
            return False
        return await self._run(self._context.verify, password, password_hash)


def new_session_id(now_ms: int | None = None) -> str:
    """A session id: a UUIDv7 (RFC 9562) in 32 hex digits, so it tells when the session began."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC variant
    return f"{value:032x}"


def session_started_ms(session_id: str | None) -> int:
    """When the session ``session_id`` began (ms); 0 for ids without a time (issued before sessions
    had one), which every tenant-wide revocation ends."""
    if session_id is None or len(session_id) != 32 or session_id[12] != "7":
        return 0
    try:
        return int(session_id[:12], 16)
    except ValueError:
        return 0


# What a credential may do. A session (JWT) may do everything; an API key what it was given.
SCOPES: tuple[str, ...] = (
    "kv:read",
    "kv:write",
    "kv:watch",
    "objects:read",
    "objects:write",
    "audit:read",
    "usage:read",
    "admin",
    "export",  # POST/GET /exports: reads every bucket and object of the tenant (app/transfer/)
    "import",  # POST/GET /imports: writes any bucket and object of the tenant
)
ALL_SCOPES: frozenset[str] = frozenset(SCOPES)
# Route requirements that are no scope a key can hold: any credential, or a user session only.
ANY_CREDENTIAL = "authenticated"
SESSION_ONLY = "session"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The principal of an authenticated request: a session's access token (every scope, every
    bucket, every key) or an API key (its scopes, buckets and key prefix)."""

    tenant_id: str
    username: str
    jti: str
    expires_at: float
    session_id: str | None = None  # None: a token issued before tokens named their session
    scopes: frozenset[str] = ALL_SCOPES
    buckets: frozenset[str] | None = None  # None: every bucket
    key_prefix: str = ""  # KV keys and object names must start with it
    key_id: str | None = None  # the API key's id; None for a session
    key_name: str | None = None

    @property
    def credential(self) -> str:
        """``k:<key id>`` for an API key, ``s:<session id>`` for a session (see credential_alive)."""
        return f"k:{self.key_id}" if self.key_id is not None else f"s:{self.session_id or ''}"

    @property
    def is_api_key(self) -> bool:
        return self.key_id is not None

    def allows(self, scope: str) -> bool:
        """Whether the principal holds ``scope`` (or meets ANY_CREDENTIAL / SESSION_ONLY)."""
        if scope == ANY_CREDENTIAL:
            return True
        if scope == SESSION_ONLY:
            return self.key_id is None
        return scope in self.scopes

    def allows_bucket(self, bucket: str) -> bool:
        return self.buckets is None or bucket in self.buckets

    def allows_key(self, key: str) -> bool:
        return key.startswith(self.key_prefix)


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    tenant_id: str
    jti: str
    family: str
    expires_at: float


class TokenService:
    """Issues and verifies HS256 tokens; verified access tokens are cached until they expire."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.secret_key
        self.access_ttl = settings.access_token_expire_minutes * 60
        self.refresh_ttl = settings.refresh_token_expire_days * 86400
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = settings.token_cache_size

    def create_access_token(self, tenant_id: str, username: str, session_id: str) -> str:
        now = int(time.time())
        payload = {
            "sub": tenant_id,
            "usr": username,
            "sid": session_id,
            "type": "access",
            "iat": now,
            "exp": now + self.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def create_refresh_token(self, tenant_id: str, family: str) -> tuple[str, str]:
        """A new refresh token of ``family``; returns (token, jti)."""
        now = int(time.time())
        jti = uuid.uuid4().hex
        payload = {
            "sub": tenant_id,
            "type": "refresh",
            "fam": family,
            "iat": now,
            "exp": now + self.refresh_ttl,
            "jti": jti,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), jti

    def _decode(self, token: str, expected_type: str) -> dict[str, Any]:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                # iat is not checked against our clock: a replica whose clock runs a little ahead
                # issues tokens "from the future" that the others must still accept; exp decides.
                options={"require": ["sub", "type", "exp", "iat", "jti"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("Token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("Token is invalid") from exc
        if payload.get("type") != expected_type:
            raise InvalidToken(f"Token is not an {expected_type} token")
        # Only the canonical form: the subject becomes part of Redis key names (and their hash tag).
        subject = str(payload["sub"])
        try:
            canonical = str(uuid.UUID(subject))
        except ValueError as exc:
            raise InvalidToken("Token subject is not a tenant id") from exc
        if subject != canonical:
            raise InvalidToken("Token subject is not a tenant id")
        return payload

    def verify_access_token(self, token: str) -> AccessClaims:
        """The claims of a valid access token, else InvalidToken."""
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None:
            if cached.expires_at > now:
                return cached
            self._cache.pop(token, None)
        payload = self._decode(token, "access")
        claims = AccessClaims(
            tenant_id=str(payload["sub"]),
            username=str(payload.get("usr", "")),
            jti=str(payload["jti"]),
            expires_at=float(payload["exp"]),
            session_id=str(payload["sid"]) if "sid" in payload else None,
        )
        if self._cache_size:
            self._cache[token] = claims
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return claims

    def verify_refresh_token(self, token: str) -> RefreshClaims:
        payload = self._decode(token, "refresh")
        if "fam" not in payload:
            raise InvalidToken("Token is invalid")
        return RefreshClaims(
            tenant_id=str(payload["sub"]),
            jti=str(payload["jti"]),
            family=str(payload["fam"]),
            expires_at=float(payload["exp"]),
        )
