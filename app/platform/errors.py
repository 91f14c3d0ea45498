"""Domain errors raised by services; `app.platform.http.problems` turns them into problem+json responses."""

from __future__ import annotations

from typing import Any

from redis.exceptions import OutOfMemoryError, ResponseError


class KVStoreError(Exception):
    """Base of every error a client may see: an HTTP status, a stable code and a message."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal Server Error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(KVStoreError):
    status, code, title = 400, "bad_request", "Bad Request"


class InvalidInput(KVStoreError):
    """A request that parsed but breaks a rule (422)."""

    status, code, title = 422, "validation_error", "Unprocessable Content"


class Unauthorized(KVStoreError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class InvalidToken(Unauthorized):
    code = "invalid_token"


class SessionEnded(InvalidToken):
    """The token's session ended: logout, logout-all, a password change or a replayed refresh token."""

    code = "session_ended"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class TokenReused(Unauthorized):
    code = "refresh_token_reused"


class Forbidden(KVStoreError):
    status, code, title = 403, "forbidden", "Forbidden"


class InsufficientScope(Forbidden):
    """The credential (an API key) is valid but may not do this: RFC 6750's insufficient_scope,
    answered with ``WWW-Authenticate: Bearer error="insufficient_scope", scope="<scope>"``."""

    code = "insufficient_scope"

    def __init__(self, detail: str, scope: str | None = None) -> None:
        challenge = 'Bearer error="insufficient_scope"' + (f', scope="{scope}"' if scope else "")
        extra = {"required_scope": scope} if scope else {}
        super().__init__(detail, headers={"WWW-Authenticate": challenge}, **extra)


class NotFound(KVStoreError):
    status, code, title = 404, "not_found", "Not Found"


class KeyNotFound(NotFound):
    code = "key_not_found"


class BucketNotFound(NotFound):
    code = "bucket_not_found"


class ObjectNotFound(NotFound):
    code = "object_not_found"


class UploadNotFound(NotFound):
    code = "upload_not_found"


class RevisionNotFound(NotFound):
    code = "revision_not_found"


class Conflict(KVStoreError):
    status, code, title = 409, "conflict", "Conflict"


class KeyExists(Conflict):
    code = "key_exists"


class BucketExists(Conflict):
    code = "bucket_exists"


class BucketNotEmpty(Conflict):
    code = "bucket_not_empty"


class UploadExpired(Conflict):
    """An upload idled past its deadline and the collector took it."""

    code = "upload_expired"


class PartsChanged(Conflict):
    """A multipart part was replaced while the upload was being completed."""

    code = "parts_changed"


class UsernameTaken(Conflict):
    code = "username_taken"


class EmailTaken(Conflict):
    code = "email_taken"


class PreconditionFailed(KVStoreError):
    status, code, title = 412, "precondition_failed", "Precondition Failed"


class VersionConflict(PreconditionFailed):
    code = "version_conflict"


class PayloadTooLarge(KVStoreError):
    status, code, title = 413, "payload_too_large", "Content Too Large"


class StorageQuotaExceeded(PayloadTooLarge):
    """A write that would pass the tenant's byte quota (413)."""

    code = "quota_exceeded"


class UnsupportedMediaType(KVStoreError):
    status, code, title = 415, "unsupported_media_type", "Unsupported Media Type"


class RangeNotSatisfiable(KVStoreError):
    status, code, title = 416, "range_not_satisfiable", "Range Not Satisfiable"


class TooManyRequests(KVStoreError):
    status, code, title = 429, "too_many_requests", "Too Many Requests"

    def __init__(self, detail: str | None = None, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class LoginThrottled(TooManyRequests):
    code = "login_throttled"


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"


class ServiceUnavailable(KVStoreError):
    status, code, title = 503, "service_unavailable", "Service Unavailable"

    def __init__(self, detail: str | None = None, retry_after: int = 2, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class TooManyApiKeys(Conflict):
    code = "too_many_api_keys"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class IdempotencyKeyInProgress(Conflict):
    """A request with the same Idempotency-Key (or CloudEvent source + id) is still running."""

    code = "idempotency_key_in_progress"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class IdempotencyKeyReused(InvalidInput):
    """An Idempotency-Key (or CloudEvent source + id) sent again with a different request."""

    code = "idempotency_key_reused"


STORAGE_FULL_DETAIL = "The data store is full and refuses writes; reads still work. Retry later or ask the operator"
STORAGE_UNAVAILABLE_DETAIL = "The data store is unreachable; retry shortly"
_UNAVAILABLE_REPLIES = ("READONLY", "LOADING", "MASTERDOWN")  # a replica, a restart, a failover


def redis_error_status(exc: BaseException) -> int | None:
    """What a Redis client error means to the client of the HTTP or gRPC API: 507 storage_full when
    Redis is at its maxmemory and refuses writes (the OOM reply, from a Lua script too: redis-py names
    it OutOfMemoryError), None for any other error reply (a bug: 500), else 503 storage_unavailable
    (unreachable, stalled, or a READONLY/LOADING/MASTERDOWN reply)."""
    if isinstance(exc, OutOfMemoryError):
        return 507
    if isinstance(exc, ResponseError) and not str(exc).startswith(_UNAVAILABLE_REPLIES):
        return None
    return 503
