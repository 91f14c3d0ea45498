"""The HTTP side of kvctl: an httpx client that adds the bearer token, refreshes it when it has
expired, and turns every failure into a CliError (problem+json answers into ApiError)."""

from __future__ import annotations

import contextlib
import time
from typing import Any
from urllib.parse import quote

import httpx

from kvctl.config import ConfigStore, Session
from kvctl.errors import ApiError, CliError, ConnectionFailed

API = "/api/v1"
USER_AGENT = "kvctl/1.0.0"
DEFAULT_BUCKET = "default"
# Refresh a little before the access token expires so a request never races its expiry.
REFRESH_MARGIN_SECONDS = 10.0


def segment(value: str) -> str:
    """One URL path segment: every reserved character escaped, so a key can never change the route."""
    return quote(value, safe="")


class KVPaths:
    """Routes of one bucket: the flat API (/api/v1/kv/...) is the default bucket."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.flat = bucket == DEFAULT_BUCKET
        self.base = f"{API}/kv" if self.flat else f"{API}/kv/buckets/{segment(bucket)}/keys"

    def keys(self) -> str:
        return self.base

    def key(self, key: str) -> str:
        return f"{self.base}/{segment(key)}"

    def history(self, key: str) -> str:
        return f"{self.key(key)}/history"

    def batch(self) -> str:
        return f"{self.base}/batch"

    def watch(self) -> str:
        return f"{API}/kv/buckets/{segment(self.bucket)}/watch"


def api_error(response: httpx.Response) -> ApiError:
    """The problem+json of an error answer, or a stand-in when a proxy answered with something else."""
    problem: Any = None
    with contextlib.suppress(ValueError):
        problem = response.json()
    if not isinstance(problem, dict):
        text = " ".join(response.text.split())[:200]
        detail = f"{response.reason_phrase}: {text}" if text else response.reason_phrase
        problem = {"detail": detail or f"HTTP {response.status_code}"}
    return ApiError(response.status_code, problem)


def json_body(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise CliError(f"unexpected non-JSON answer from {response.request.url} (HTTP {response.status_code})") from exc


class ApiClient:
    """One server URL, its stored session and an httpx connection pool."""

    def __init__(
        self,
        url: str,
        store: ConfigStore,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        api_key: str | None = None,
    ) -> None:
        self.url = url
        self.store = store
        self.api_key = api_key  # used instead of the saved login when set (--api-key, $KVCTL_API_KEY)
        self.http = httpx.Client(base_url=url, timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT})
        self._session: Session | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending --------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        """Send and read the whole answer; raises ApiError for 4xx/5xx, ConnectionFailed when unreachable."""
        return self._send(method, path, auth=auth, stream=False, **kwargs)

    def open_stream(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        """Like request() but the body is left unread; the caller must close() the response."""
        return self._send(method, path, auth=auth, stream=True, **kwargs)

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        """request() and return the decoded JSON body (None for an empty body)."""
        return json_body(self.request(method, path, auth=auth, **kwargs))

    def _send(
        self,
        method: str,
        path: str,
        *,
        auth: bool,
        stream: bool,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        for attempt in range(2):
            request_headers = dict(headers or {})
            token = None
            if auth:
                token = self.access_token()
                request_headers["Authorization"] = f"Bearer {token}"
            request = self.http.build_request(method, path, headers=request_headers, **kwargs)
            response = self.transmit(request, stream=stream)
            if (
                response.status_code == 401
                and auth
                and attempt == 0
                and self.api_key is None  # a key has nothing to rotate: its 401 is final
                and not _refused_credentials(response)
            ):
                # The access token expired or was revoked: rotate the pair once and try again.
                response.close()
                self.refresh(stale_access_token=token)
                continue
            if response.status_code >= 400:
                if stream:
                    response.read()
                    response.close()
                raise api_error(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def transmit(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        try:
            return self.http.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"{self.url} did not answer in time ({exc.__class__.__name__})") from exc
        except httpx.TransportError as exc:
            reason = str(exc) or exc.__class__.__name__
            raise ConnectionFailed(f"cannot connect to {self.url}: {reason}") from exc

    # -- session --------------------------------------------------------------------------------

    def session(self) -> Session:
        session = self._session or self.store.session(self.url)
        if session is None:
            raise CliError(f"not logged in to {self.url}; run: kvctl login")
        self._session = session
        return session

    def access_token(self) -> str:
        """The API key when one is given, else the stored access token, rotated first when it is
        about to expire."""
        if self.api_key is not None:
            return self.api_key
        session = self.session()
        if session.expires_at and session.expires_at - REFRESH_MARGIN_SECONDS < time.time():
            session = self.refresh(stale_access_token=session.access_token)
        return session.access_token

    def refresh(self, stale_access_token: str | None = None) -> Session:
        """Rotate the token pair (POST /auth/refresh) and save it; under a lock, so that concurrent
        kvctl processes never present the same refresh token twice (the server treats that as theft)."""
        if self.api_key is not None:
            raise CliError(f"the API key was refused by {self.url} (revoked or expired?)")
        with self.store.locked():
            current = self.store.session(self.url)
            if current is None:
                raise CliError(f"not logged in to {self.url}; run: kvctl login")
            fresh = current.expires_at - REFRESH_MARGIN_SECONDS > time.time()
            if stale_access_token and current.access_token != stale_access_token and fresh:
                self._session = current  # another kvctl process rotated the pair meanwhile
                return current
            try:
                pair = self.call(
                    "POST", f"{API}/auth/refresh", auth=False, json={"refresh_token": current.refresh_token}
                )
            except ApiError as exc:
                if exc.status in (401, 422):
                    raise CliError(f"the session on {self.url} has expired or was revoked; run: kvctl login") from exc
                raise
            session = session_from_tokens(pair, username=current.username, tenant_id=current.tenant_id)
            self.store.set_session(self.url, session)
            self._session = session
            return session

    def save_login(self, tokens: dict[str, Any], username: str) -> Session:
        session = session_from_tokens(tokens, username=username, tenant_id=tokens.get("tenant_id"))
        with self.store.locked():
            self.store.set_session(self.url, session)
        self._session = session
        return session


def _refused_credentials(response: httpx.Response) -> bool:
    """A 401 about a password the user typed (``invalid_credentials``), not about the token."""
    try:
        response.read()
        body = response.json()
    except (ValueError, httpx.HTTPError):
        return False
    return isinstance(body, dict) and body.get("code") == "invalid_credentials"


def session_from_tokens(tokens: Any, *, username: str, tenant_id: str | None) -> Session:
    if not isinstance(tokens, dict) or not tokens.get("access_token") or not tokens.get("refresh_token"):
        raise CliError("the server answered without a token pair")
    expires_in = float(tokens.get("expires_in") or 0)
    return Session(
        username=username,
        tenant_id=tokens.get("tenant_id") or tenant_id,
        access_token=str(tokens["access_token"]),
        refresh_token=str(tokens["refresh_token"]),
        expires_at=time.time() + expires_in if expires_in else 0.0,  # 0: unknown, rely on 401
    )
