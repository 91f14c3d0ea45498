"""Presigned object URLs: a GET or PUT of one object that needs no Authorization header.

A presigned URL is the normal object URL (``.../buckets/{bucket}/objects/{name}``) with query
parameters that say who signed it and until when, so the normal object route answers it (Range,
If-None-Match, If-Range... work as usual):

- ``tenant``: the creator's tenant; ``cred``: the creator's credential (``s:<session id>``; API keys
  will add ``k:<key id>``); ``issued``/``expires``: seconds since the epoch;
- ``max_bytes``, ``content_type`` (PUT only, optional): the body's limit and its required type;
- ``signature``: HMAC-SHA256, in hex, of the canonical string of all of that plus the method, the
  bucket and the name, under a key derived from SECRET_KEY for this purpose only.

A URL dies with the credential that signed it (app.auth.api_keys.credential_alive): ending the session
(logout, logout-all, password change) refuses its URLs within a second on every API process. No
HTTP in here: app/objects/deps.py reads the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlencode

from app.platform.errors import Forbidden, PayloadTooLarge
from app.platform.security import AccessClaims

MAX_EXPIRES_IN: Final = 604_800  # 7 days
SIGNING_CONTEXT: Final = b"kvstore presigned object URL v1"
PARAMS: Final = ("tenant", "cred", "issued", "expires", "max_bytes", "content_type", "signature")
REQUIRED: Final = frozenset({"tenant", "cred", "issued", "expires", "signature"})
MAX_CONTENT_TYPE_CHARS: Final = 255

_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: int() would take Arabic-Indic digits too
_MAX_BYTES = re.compile(r"[0-9]{1,18}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_CREDENTIAL = re.compile(r"s:(?:[0-9a-f]{32})?|k:[A-Za-z0-9_-]{1,64}")
_CONTENT_TYPE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}")  # visible ASCII, as an HTTP header value


class PresignedUrlInvalid(Forbidden):
    """A presigned URL that was not signed here, was changed, or is used for another object or method."""

    code = "presigned_url_invalid"


class PresignedUrlExpired(Forbidden):
    code = "presigned_url_expired"


class PresignedUrlRevoked(Forbidden):
    """The credential that signed the URL has ended (its session was logged out...)."""

    code = "presigned_url_revoked"


@dataclass(frozen=True, slots=True)
class Grant:
    """What one presigned URL allows: ``method`` on one object of ``tenant_id``, until ``expires``."""

    method: str
    tenant_id: str
    bucket: str
    name: str
    credential: str
    issued: int
    expires: int
    max_bytes: int = 0  # 0: no limit beyond the bucket's
    content_type: str = ""  # '': any

    def canonical(self) -> bytes:
        """The signed string: every field, JSON-encoded (no separator inside a name can fake another field)."""
        fields = [
            "v1",
            self.method,
            self.tenant_id,
            self.bucket,
            self.name,
            self.credential,
            self.issued,
            self.expires,
            self.max_bytes,
            self.content_type,
        ]
        return json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode("ascii")

    @property
    def session_id(self) -> str | None:
        kind, _, ident = self.credential.partition(":")
        return (ident or None) if kind == "s" else None

    def claims(self, username: str = "") -> AccessClaims:
        """The claims the object route works with: the creator's tenant (and session)."""
        kind, _, ident = self.credential.partition(":")
        return AccessClaims(
            tenant_id=self.tenant_id,
            username=username,
            jti="presigned",
            expires_at=float(self.expires),
            session_id=self.session_id,
            # What the URL may do, whatever its creator may: this one method on this one object.
            scopes=frozenset({"objects:write" if self.method == "PUT" else "objects:read"}),
            buckets=frozenset({self.bucket}),
            key_prefix=self.name,
            key_id=ident if kind == "k" else None,
        )


def credential_of(claims: AccessClaims) -> str:
    """The credential a request authenticated with, as a presigned URL names it: ``s:<session id>``
    (empty for tokens issued before sessions had ids) or ``k:<API key id>``."""
    return claims.credential


class PresignSigner:
    """Signs and checks presigned URLs with a key derived from SECRET_KEY (never SECRET_KEY itself,
    so a signature can never be replayed as a token's or the other way round)."""

    def __init__(self, secret_key: str) -> None:
        self._key = hmac.new(secret_key.encode(), SIGNING_CONTEXT, hashlib.sha256).digest()

    def sign(self, grant: Grant) -> str:
        return hmac.new(self._key, grant.canonical(), hashlib.sha256).hexdigest()

    def query(self, grant: Grant) -> str:
        """The query string of the URL of ``grant``."""
        params: list[tuple[str, str | int]] = [
            ("tenant", grant.tenant_id),
            ("cred", grant.credential),
            ("issued", grant.issued),
            ("expires", grant.expires),
        ]
        if grant.max_bytes:
            params.append(("max_bytes", grant.max_bytes))
        if grant.content_type:
            params.append(("content_type", grant.content_type))
        params.append(("signature", self.sign(grant)))
        return urlencode(params, quote_via=quote)

    def verify(
        self,
        method: str,
        bucket: str,
        name: str,
        params: Mapping[str, Sequence[str]],
        now: float | None = None,
    ) -> Grant:
        """The grant of a request's presigned parameters (``params``: each name with every value the
        query gave it) for ``method`` on ``bucket``/``name``; raises 403 when any of it is
        malformed, does not match the signature, or has expired."""
        values: dict[str, str] = {}
        for param in PARAMS:
            given = params.get(param, ())
            if len(given) > 1:
                raise PresignedUrlInvalid(f"The presigned URL repeats the {param!r} parameter")
            if given:
                values[param] = given[0]
        missing = sorted(REQUIRED - values.keys())
        if missing:
            raise PresignedUrlInvalid(f"The presigned URL lacks {', '.join(missing)}")
        grant = Grant(
            method="GET" if method == "HEAD" else method,
            tenant_id=_tenant(values["tenant"]),
            bucket=bucket,
            name=name,
            credential=_match(_CREDENTIAL, values["cred"], "cred"),
            issued=int(_match(_DIGITS, values["issued"], "issued")),
            expires=int(_match(_DIGITS, values["expires"], "expires")),
            max_bytes=int(_match(_MAX_BYTES, values.get("max_bytes", "0"), "max_bytes")),
            content_type=_match(_CONTENT_TYPE, values["content_type"], "content_type")
            if "content_type" in values
            else "",
        )
        signature = _match(_SIGNATURE, values["signature"], "signature")
        if not hmac.compare_digest(self.sign(grant), signature):
            raise PresignedUrlInvalid(
                "The signature does not match: the URL was changed, or is used for another object, "
                "method or tenant than it was signed for"
            )
        if (time.time() if now is None else now) >= grant.expires:
            raise PresignedUrlExpired("The presigned URL has expired")
        return grant


def object_path(api_prefix: str, bucket: str, name: str) -> str:
    """The path of an object's route, its name percent-encoded ('/' kept)."""
    return f"{api_prefix.rstrip('/')}/objects/buckets/{quote(bucket, safe='')}/objects/{quote(name, safe='/')}"


def check_content_type(grant: Grant, content_type: str | None) -> None:
    """A presigned PUT carries the content type it was signed for (when it was signed with one)."""
    if grant.content_type and (content_type or "").strip().lower() != grant.content_type.lower():
        raise PresignedUrlInvalid(f"This presigned URL takes Content-Type {grant.content_type!r} only")


def check_length(grant: Grant, content_length: int | None) -> None:
    if grant.max_bytes and content_length is not None and content_length > grant.max_bytes:
        raise PayloadTooLarge(f"This presigned URL takes at most {grant.max_bytes} bytes", limit=grant.max_bytes)


async def limited(body: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """``body``, raising 413 as soon as it passes ``max_bytes`` (for a body sent without Content-Length)."""
    received = 0
    async for piece in body:
        received += len(piece)
        if received > max_bytes:
            raise PayloadTooLarge(f"This presigned URL takes at most {max_bytes} bytes", limit=max_bytes)
        yield piece


def _match(pattern: re.Pattern[str], value: str, param: str) -> str:
    if not pattern.fullmatch(value):
        raise PresignedUrlInvalid(f"The presigned URL's {param!r} parameter is malformed")
    return value


def _tenant(value: str) -> str:
    try:
        canonical = str(uuid.UUID(value)) if len(value) == 36 else ""
    except ValueError:
        canonical = ""
    if canonical != value:
        raise PresignedUrlInvalid("The presigned URL's 'tenant' parameter is malformed")
    return value
