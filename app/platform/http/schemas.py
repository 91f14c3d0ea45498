"""Shapes shared by every resource: the problem+json error body and OpenAPI error responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable machine ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None
    errors: list[FieldError] | None = None


class Message(BaseModel):
    message: str


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired access token",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed (If-Match / If-None-Match / expected_version)",
    413: "Over a size limit",
    415: "Unsupported media type (send JSON)",
    416: "Range not satisfiable",
    422: "Invalid input",
    429: "Rate limited or over a quota",
    431: "Request headers over the size limit",
    503: "Storage unavailable; retry after Retry-After seconds",
    507: "The data store is full (maxmemory) and refuses writes; reads still work",
}


def problem_response_doc(status: int) -> dict[str, Any]:
    """The OpenAPI response object of one error status: an application/problem+json body."""
    return {
        "description": _DESCRIPTIONS.get(status, "Error"),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def PROBLEM_RESPONSES(*statuses: int) -> dict[int | str, dict[str, Any]]:  # noqa: N802 - reads like a constant
    """OpenAPI ``responses`` for the given error statuses, each an application/problem+json."""
    return {status: problem_response_doc(status) for status in (*statuses, 503)}
