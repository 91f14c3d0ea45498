"""Registration, login, token rotation and the current user; no HTTP in here."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from app.auth.api_keys import ApiKeys
from app.auth.model import IssuedTokens, User
from app.auth.sessions import SessionRevocations
from app.auth.store import AuthStore, Revocation
from app.auth.throttle import LoginLimits, address_key
from app.config import Settings
from app.platform.context import audit_note, client_ip_var
from app.platform.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    LoginThrottled,
    TokenReused,
    UsernameTaken,
)
from app.platform.redis import AsyncDataRedis
from app.platform.scripts import Scripts
from app.platform.security import AccessClaims, PasswordHasher, TokenService, new_session_id, session_started_ms


class AuthService:
    def __init__(
        self,
        redis: AsyncDataRedis,
        scripts: Scripts,
        hasher: PasswordHasher,
        tokens: TokenService,
        settings: Settings,
    ) -> None:
        self._store = AuthStore(redis, scripts)
        self._hasher = hasher
        self._tokens = tokens
        self._settings = settings
        self.sessions = SessionRevocations(self._store, settings)
        self.api_keys = ApiKeys(self._store, self.sessions, settings)
        self._login_limits = LoginLimits.from_settings(settings)

    async def _issue(self, tenant_id: str, username: str) -> IssuedTokens:
        """A new session: its id is the family of its refresh tokens and the ``sid`` of its access tokens."""
        family = new_session_id()
        refresh, jti = self._tokens.create_refresh_token(tenant_id, family)
        await self._store.save_refresh_token(tenant_id, jti, family, self._tokens.refresh_ttl)
        return self._pair(tenant_id, username, refresh, family)

    def _pair(self, tenant_id: str, username: str, refresh: str, session_id: str) -> IssuedTokens:
        return IssuedTokens(
            tenant_id=tenant_id,
            access_token=self._tokens.create_access_token(tenant_id, username, session_id),
            refresh_token=refresh,
            expires_in=self._tokens.access_ttl,
        )

    async def register(self, username: str, email: str, password: str) -> IssuedTokens:
        """Create a tenant; the username and email are claimed atomically (SET NX)."""
        audit_note(username=username)
        password_hash = await self._hasher.hash(password)
        tenant_id = str(uuid.uuid4())
        email = email.lower()
        # The user record goes first: a crash before the claims leaves only an orphan
        # record that nothing points at, never a claimed name without a user.
        await self._store.create_user(
            tenant_id, username=username, email=email, password_hash=password_hash, created_at=datetime.now(UTC)
        )
        if not await self._store.claim_username(username, tenant_id):
            await self._store.delete_user(tenant_id)
            raise UsernameTaken(f"Username {username!r} is already registered")
        if not await self._store.claim_email(email, tenant_id):
            await self._store.delete_user(tenant_id, claimed_username=username)
            raise EmailTaken("Email is already registered")
        audit_note(tenant_id=tenant_id)
        return await self._issue(tenant_id, username)

    async def login(self, username: str, password: str) -> IssuedTokens:
        """Tokens for valid credentials; the same 401 for an unknown user and a wrong password.

        The attempt is reserved (counted as a failure) before the password is checked, per username
        and client address and per address (app/auth/throttle.py), so concurrent wrong passwords
        cannot pass the limit; a success gives the reservation back."""
        audit_note(action="auth.login", username=username)  # also for the OAuth2 form of /auth/token
        tenant_id = await self._store.tenant_of(username)
        # A failed or throttled login of an existing user is an event of that user's tenant.
        audit_note(tenant_id=tenant_id)
        address = await self._reserve_attempt(username)
        password_hash = await self._store.password_hash(tenant_id) if tenant_id is not None else None
        if not await self._hasher.verify(password, password_hash) or tenant_id is None:
            raise InvalidCredentials("Incorrect username or password")  # the reservation stays a failure
        await self._store.release_login(username, address)
        return await self._issue(tenant_id, username)

    async def _reserve_attempt(self, username: str) -> str:
        """Count a password check of ``username`` as a failure before it runs (429 past the limits);
        returns the client's address key, for giving the attempt back on success."""
        address = address_key(client_ip_var.get())
        limits = self._login_limits
        reservation = await self._store.reserve_login(
            username, address, limits.max_per_username, limits.max_per_address, limits.window_seconds
        )
        if not reservation.granted:
            raise LoginThrottled(
                f"Too many failed logins from your address; try again in {reservation.retry_after} s",
                retry_after=reservation.retry_after,
            )
        return address

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Spend ``refresh_token`` for a new pair; replaying a spent one revokes its family."""
        claims = self._tokens.verify_refresh_token(refresh_token)
        audit_note(tenant_id=claims.tenant_id)
        new_refresh, new_jti = self._tokens.create_refresh_token(claims.tenant_id, claims.family)
        try:
            username = await self._store.rotate_refresh_token(
                claims.tenant_id,
                claims.jti,
                claims.family,
                session_started_ms(claims.family),
                new_jti,
                self._tokens.refresh_ttl,
            )
        except TokenReused:
            # The script revoked the family; its access tokens end everywhere too.
            await self._store.announce_revoked_family(
                claims.tenant_id, claims.family, stream_ttl_seconds=self.sessions.stream_ttl_seconds
            )
            self._ended_here(claims.tenant_id, session_id=claims.family)
            raise
        audit_note(username=username or None)
        return self._pair(claims.tenant_id, username, new_refresh, claims.family)

    async def logout(self, refresh_token: str) -> str:
        """End the session (token family) of ``refresh_token``; returns the tenant id."""
        claims = self._tokens.verify_refresh_token(refresh_token)
        audit_note(tenant_id=claims.tenant_id)
        username = await self._store.revoke_family(
            claims.tenant_id,
            claims.family,
            self._tokens.refresh_ttl,
            stream_ttl_seconds=self.sessions.stream_ttl_seconds,
        )
        self._ended_here(claims.tenant_id, session_id=claims.family)
        audit_note(username=username)  # for the audit event
        return claims.tenant_id

    async def logout_all(self, claims: AccessClaims) -> None:
        """End every session of the tenant, the caller's too."""
        await self._cut_off(claims.tenant_id, keep="")

    async def change_password(self, claims: AccessClaims, current_password: str, new_password: str) -> None:
        """Replace the password after checking the current one; every other session ends (the
        caller's goes on). A wrong current password counts as a failed login of the user."""
        username = claims.username
        address = await self._reserve_attempt(username)
        password_hash = await self._store.password_hash(claims.tenant_id)
        if password_hash is None:
            raise InvalidToken("The account of this token no longer exists")
        if not await self._hasher.verify(current_password, password_hash):
            raise InvalidCredentials("The current password is incorrect")  # the reservation stays a failure
        await self._store.release_login(username, address)
        await self._store.set_password_hash(claims.tenant_id, await self._hasher.hash(new_password))
        await self._cut_off(claims.tenant_id, keep=claims.session_id or "")

    async def _cut_off(self, tenant_id: str, keep: str) -> None:
        before_ms = int(time.time() * 1000) + 1  # a session begun in this very millisecond ends too
        await self._store.cut_off_sessions(
            tenant_id,
            before_ms,
            keep,
            self._tokens.refresh_ttl,
            stream_ttl_seconds=self.sessions.stream_ttl_seconds,
        )
        self._ended_here(tenant_id, before_ms=before_ms, keep=keep)

    def _ended_here(self, tenant_id: str, *, session_id: str | None = None, before_ms: int = 0, keep: str = "") -> None:
        """This process knows at once; the others learn it from the stream."""
        self.sessions.apply(
            [
                Revocation(
                    entry_id="",
                    at_ms=int(time.time() * 1000),
                    tenant_id=tenant_id,
                    session_id=session_id,
                    before_ms=before_ms,
                    keep=keep,
                )
            ]
        )

    async def get_user(self, tenant_id: str) -> User:
        user = await self._store.user(tenant_id)
        if user is None:
            raise InvalidToken("The account of this token no longer exists")
        return user
