"""Domain errors as gRPC statuses: the status code, the HTTP API's problem ``code`` in the trailing
metadata (``kvstore-code``) and in ``grpc-status-details-bin`` (google.rpc.Status with a
google.rpc.ErrorInfo: reason = the code, domain ``kvstore``, metadata = the problem's extra fields).

| HTTP | gRPC |
|---|---|
| 400, 413 (too large), 415, 422 | INVALID_ARGUMENT |
| 401 | UNAUTHENTICATED |
| 403 | PERMISSION_DENIED |
| 404 | NOT_FOUND |
| 409 key_exists, bucket_exists | ALREADY_EXISTS |
| 409 bucket_not_empty | FAILED_PRECONDITION |
| 409 other conflicts | ABORTED (retry) |
| 412 (compare-and-swap) | FAILED_PRECONDITION |
| 413 quota_exceeded, 429, 507 | RESOURCE_EXHAUSTED |
| 416 | OUT_OF_RANGE |
| 501 | UNIMPLEMENTED |
| 503 | UNAVAILABLE |
| anything else | INTERNAL |
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from app.platform.errors import STORAGE_FULL_DETAIL, STORAGE_UNAVAILABLE_DETAIL, KVStoreError, redis_error_status
from app.platform.redis import REDIS_ERRORS

logger = logging.getLogger("kvstore.grpc")

CODE_METADATA = "kvstore-code"
RETRY_AFTER_METADATA = "retry-after"
DETAILS_METADATA = "grpc-status-details-bin"
DOMAIN = "kvstore"


class ResponseTooLarge(KVStoreError):
    """An answer too large for one message (GetAll of a big bucket): page with kvstore.v1.KV/List."""

    status, code, title = 413, "response_too_large", "Content Too Large"


# Why a watch stream ended (app/watch/service.py) and the HTTP status its WebSocket close code carries.
_STREAM_END_STATUS = {
    "token_expired": 401,
    "session_ended": 401,
    "bucket_not_found": 404,
    "quota_exceeded": 429,
    "slow_consumer": 503,
    "shutting_down": 503,
    "unavailable": 503,
}


class StreamEnded(KVStoreError):
    """A watch stream ended by the server; ``resume_from`` is the revision to resume after."""

    def __init__(self, code: str, detail: str, resume_from: int) -> None:
        super().__init__(detail, resume_from=resume_from)
        self.code = code
        self.status = _STREAM_END_STATUS.get(code, 503)
        self.retry_after = 1 if self.status == 503 else None


_BY_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    416: grpc.StatusCode.OUT_OF_RANGE,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    507: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_BY_CODE: dict[str, grpc.StatusCode] = {
    "quota_exceeded": grpc.StatusCode.RESOURCE_EXHAUSTED,  # the byte quota (413) as the key quota (429)
    "key_exists": grpc.StatusCode.ALREADY_EXISTS,
    "bucket_exists": grpc.StatusCode.ALREADY_EXISTS,
    "bucket_not_empty": grpc.StatusCode.FAILED_PRECONDITION,
    "response_too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
}


@dataclass(frozen=True, slots=True)
class RpcError:
    """What one failed call answers: the status, the problem code and message, the HTTP status the
    HTTP API would have answered (for the audit trail), and extra trailing metadata."""

    status: grpc.StatusCode
    code: str
    message: str
    http_status: int
    extra: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """``kvstore-code``, ``grpc-status-details-bin``, ``retry-after`` (when the client should wait)
        and ``kvstore-<field>`` for each extra field of the problem that is plain ASCII
        (``kvstore-resume-from``, ``kvstore-current-version``, ``kvstore-limit``...)."""
        extra = {name: _utf8(value) for name, value in self.extra.items()}
        info = error_details_pb2.ErrorInfo(reason=self.code, domain=DOMAIN, metadata=extra)
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(code=self.status.value[0], message=_utf8(self.message), details=[detail])
        metadata: list[tuple[str, str | bytes]] = [
            (CODE_METADATA, self.code),
            (DETAILS_METADATA, status.SerializeToString()),
        ]
        if self.retry_after is not None:
            metadata.append((RETRY_AFTER_METADATA, str(self.retry_after)))
        for name, value in extra.items():
            header = "kvstore-" + name.replace("_", "-").lower()
            if _METADATA_NAME.fullmatch(header) and _METADATA_VALUE.fullmatch(value) and len(value) <= 1024:
                metadata.append((header, value))
        return tuple(metadata)


_METADATA_NAME = re.compile(r"[a-z0-9-]{1,64}")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")


def _utf8(text: str) -> str:
    """``text`` as protobuf can serialize it (a lone surrogate becomes U+FFFD)."""
    return text.encode("utf-8", "replace").decode()


def _extra_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def from_exception(exc: BaseException) -> RpcError:
    """The status of an exception raised by a service (or the Redis client); a bug is INTERNAL."""
    if isinstance(exc, KVStoreError):
        status = _BY_CODE.get(exc.code) or _BY_STATUS.get(exc.status, grpc.StatusCode.INTERNAL)
        extra = {name: _extra_text(value) for name, value in exc.extra.items() if name != "headers"}
        retry_after = getattr(exc, "retry_after", None)  # TooManyRequests, ServiceUnavailable
        return RpcError(status, exc.code, exc.detail, exc.status, extra, retry_after)
    redis_status = redis_error_status(exc) if isinstance(exc, REDIS_ERRORS) else None
    if redis_status == 507:
        return RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "storage_full", STORAGE_FULL_DETAIL, 507)
    if redis_status == 503:
        logger.warning("redis unavailable: %s", exc.__class__.__name__)
        return RpcError(grpc.StatusCode.UNAVAILABLE, "storage_unavailable", STORAGE_UNAVAILABLE_DETAIL, 503)
    logger.error("unexpected error in a gRPC call", exc_info=exc)
    return RpcError(grpc.StatusCode.INTERNAL, "internal_error", "An unexpected error occurred", 500)
