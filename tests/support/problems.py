"""The one check of a problem+json error response (RFC 9457) that every suite uses."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """A problem+json answer with ``status`` (and ``code`` when given): every problem field set, the
    request id of the response, never a stack trace. Returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM, response.headers
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert body["title"] and body["detail"], body
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
        assert body["type"] == f"/problems/{code}"
    return body
