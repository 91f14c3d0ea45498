"""Ended sessions, known to every API process within a second, at no cost per request.

An access token names its session (the ``sid`` claim: the family of its refresh tokens, a UUIDv7 that
tells when the session began). Logout, refresh-token reuse, a password change and logout-all end
sessions: they write the durable record (the family marker, or the tenant's cut-off ``before``/``keep``
that refresh_rotate.lua checks) and add an entry to one stream, ``auth:session_revocations``. Each API
process follows that stream with one XREAD BLOCK loop on a connection of its own and keeps what it read
in memory, so checking a request's token is two dictionary lookups, not a Redis round trip. An entry
matters only while an access token it ends can still be valid, so the stream and the memory keep
entries for one access-token lifetime.

API keys use the same stream: deleting a key adds a ``kid`` entry, and each process drops the key
from its cache of verified keys (app/auth/api_keys.py) and remembers the id as revoked, so a key
request needs no Redis round trip either while the copy is current.

When the loop has not heard from Redis for ``STALE_AFTER_SECONDS`` (Redis unreachable, the process
just started), the copy may be behind: requests then ask Redis (one pipelined round trip in the
tenant's slot) until the loop has caught up. A token is never accepted on a stale copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.auth.store import AuthStore, Revocation, read_revocations
from app.config import Settings
from app.platform.errors import SessionEnded
from app.platform.redis import REDIS_ERRORS, create_async_data_redis
from app.platform.security import AccessClaims, session_started_ms

logger = logging.getLogger("app.auth.sessions")


BLOCK_MS = 1000
READ_BATCH = 1000
STALE_AFTER_SECONDS = 3.0
PRUNE_EVERY_SECONDS = 60.0
SLACK_SECONDS = 60  # clocks of API processes and Redis may differ a little


@dataclass(frozen=True, slots=True)
class _Cutoff:
    at_ms: int
    before_ms: int
    keep: str


class SessionRevocations:
    """This process's copy of the ended sessions and the loop that keeps it current."""

    def __init__(self, store: AuthStore, settings: Settings) -> None:
        self._store = store
        self.keep_ms = (settings.access_token_expire_minutes * 60 + SLACK_SECONDS) * 1000
        self.stream_ttl_seconds = self.keep_ms // 1000
        # A connection of its own: the blocked read must not hold one of the request pool.
        self._client = create_async_data_redis(
            settings.model_copy(
                update={
                    "redis_socket_timeout": BLOCK_MS / 1000 + settings.redis_socket_timeout,
                    "redis_max_connections": 2,
                }
            )
        )
        self._sessions: dict[str, int] = {}  # session id -> when it ended (ms)
        self.revoked_keys: dict[str, int] = {}  # API key id -> when it was revoked (ms)
        self.on_key_revoked: Callable[[str], None] | None = None  # the key cache forgets the key
        self._cutoffs: dict[str, _Cutoff] = {}  # tenant id -> its latest cut-off
        self._after = "0"  # the last stream entry read
        self._synced_at = float("-inf")  # monotonic time of the last answer from the stream
        self._pruned_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        # tenant id -> open watch streams: their credential and what to call when it ends
        self._watchers: dict[str, dict[object, tuple[str, Callable[[], None]]]] = {}

    # -- the check of every authenticated request ------------------------------------------------
    @property
    def current(self) -> bool:
        """True while the copy is known to be at most a read behind the stream."""
        return time.monotonic() - self._synced_at < STALE_AFTER_SECONDS

    def _ended(self, tenant_id: str, session_id: str | None) -> bool:
        """Whether this process's copy says the session ended."""
        if session_id is not None and session_id in self._sessions:
            return True
        cutoff = self._cutoffs.get(tenant_id)
        return cutoff is not None and _cut(session_id, cutoff.before_ms, cutoff.keep)

    def credential_ended(self, tenant_id: str, credential: str) -> bool:
        """Whether this process's copy says the credential (``s:<session id>``, ``k:<key id>``) ended."""
        kind, _, ident = credential.partition(":")
        if kind == "k":
            return ident in self.revoked_keys
        return self._ended(tenant_id, ident or None)

    def on_end(self, tenant_id: str, credential: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once this process learns that the credential (``s:<session id>`` or
        ``k:<API key id>``, AccessClaims.credential) ended: an open watch stream ends then. Returns
        the function that forgets the callback."""
        watchers = self._watchers.setdefault(tenant_id, {})
        handle = object()
        watchers[handle] = (credential, callback)

        def forget() -> None:
            known = self._watchers.get(tenant_id)
            if known is not None:
                known.pop(handle, None)
                if not known:
                    del self._watchers[tenant_id]

        return forget

    async def check(self, claims: AccessClaims) -> None:
        """Raise SessionEnded (401) for a token of an ended session; asks Redis while the copy is stale."""
        if self.current:
            ended = self._ended(claims.tenant_id, claims.session_id)
        else:
            ended = await self.ended_in_redis(claims.tenant_id, claims.session_id)
        if ended:
            raise SessionEnded("The session of this token has ended; log in again")

    async def ended_in_redis(self, tenant_id: str, session_id: str | None) -> bool:
        """Redis's word on whether a session ended (one round trip in the tenant's slot)."""
        state = await self._store.session_cutoff(tenant_id, session_id)
        return state.family_revoked or _cut(session_id, state.before_ms, state.keep)

    # -- keeping the copy current ----------------------------------------------------------------
    def apply(self, entries: list[Revocation]) -> None:
        self._record(entries)
        for tenant_id in {entry.tenant_id for entry in entries} & self._watchers.keys():
            for credential, callback in list(self._watchers.get(tenant_id, {}).values()):
                if self.credential_ended(tenant_id, credential):
                    callback()

    def _record(self, entries: list[Revocation]) -> None:
        for entry in entries:
            if entry.key_id is not None:
                self.revoked_keys[entry.key_id] = entry.at_ms
                if self.on_key_revoked is not None:
                    self.on_key_revoked(entry.key_id)
            elif entry.session_id is not None:
                self._sessions[entry.session_id] = entry.at_ms
            elif entry.before_ms:
                known = self._cutoffs.get(entry.tenant_id)
                if known is None or known.before_ms <= entry.before_ms:
                    self._cutoffs[entry.tenant_id] = _Cutoff(entry.at_ms, entry.before_ms, entry.keep)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow(), name="auth:session_revocations")

    async def _follow(self) -> None:
        failures = 0
        catching_up = True  # read what is there without waiting, then wait for what comes
        while True:
            try:
                entries = await read_revocations(
                    self._client, self._after, None if catching_up else BLOCK_MS, READ_BATCH
                )
            except REDIS_ERRORS as exc:
                failures += 1
                if failures == 1:
                    logger.warning(
                        "session revocations unreadable (%s): each token's session is checked in Redis meanwhile",
                        exc.__class__.__name__,
                    )
                await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                continue
            if failures:
                logger.info("session revocations readable again")
                failures = 0
            self.apply(entries)
            if entries:
                self._after = entries[-1].entry_id
            catching_up = len(entries) == READ_BATCH
            self._synced_at = time.monotonic()
            self._prune()

    def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        oldest = int(time.time() * 1000) - self.keep_ms
        self._sessions = {sid: at for sid, at in self._sessions.items() if at >= oldest}
        # Longer than any verified key stays cached (api_keys.CACHE_SECONDS), and a revoked id never returns.
        self.revoked_keys = {kid: at for kid, at in self.revoked_keys.items() if at >= oldest}
        self._cutoffs = {tenant: cut for tenant, cut in self._cutoffs.items() if cut.at_ms >= oldest}

    async def aclose(self) -> None:
        task = self._task
        if task is not None:
            # Repeated: the cluster client can lose a cancellation that arrives mid-send (see the
            # watch hub's FeedReader.stop).
            for _ in range(40):
                task.cancel()
                done, _pending = await asyncio.wait([task], timeout=0.05)
                if done:
                    break
            with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
                if task.done():
                    task.result()
        await self._client.aclose()


def _cut(session_id: str | None, before_ms: int, keep: str) -> bool:
    """Whether a tenant cut-off (``before_ms``, ``keep``) ends session ``session_id``."""
    return bool(before_ms) and session_started_ms(session_id) < before_ms and session_id != keep
