"""The error responses every operation can give, added to the OpenAPI document in one place.

Routers document the errors of their own rules (404, 409, 412, ...). The ones below come from the
layers every request goes through, so they are added here rather than repeated on each route:

- 401 and 429 on every operation that takes a bearer token (authentication, the tenant's rate limit);
- 400 (a body that cannot be parsed), 413 (over ``max_request_body_bytes``), 415 (not JSON) and 422
  on every operation with a request body; 422 on every operation with parameters;
- 431 (request headers over ``max_request_header_bytes``) on every operation;
- 503 (a Redis server unreachable) on every operation but the process-only liveness probes;
- 507 (the data Redis is at its maxmemory and refuses writes) on every operation that may write.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.platform.http.schemas import problem_response_doc

PROBLEM_JSON = "application/problem+json"
PATH_PARAMETER_RE = re.compile(r"{([^}:]+)(?::[^}]*)?}")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def body_examples(media_types: tuple[str, ...] = ("application/json",), **examples: Any) -> dict[str, Any]:
    """``openapi_extra`` for a route: named examples of its request body (the name, with spaces for
    underscores, is the example's summary in Swagger UI). FastAPI merges it into the operation it
    generates, so the body's schema and validation stay the model's."""
    named = {name: {"summary": name.replace("_", " ").capitalize(), "value": value} for name, value in examples.items()}
    return {"requestBody": {"content": {media_type: {"examples": named} for media_type in media_types}}}


def _add(responses: dict[str, Any], *statuses: int) -> None:
    for status in statuses:
        documented = responses.get(str(status))
        # FastAPI documents its own 422 as an application/json HTTPValidationError; ours is a problem.
        if documented is None or (status == 422 and PROBLEM_JSON not in documented.get("content", {})):
            responses[str(status)] = problem_response_doc(status)


def document_error_responses(schema: dict[str, Any], api_prefix: str) -> None:
    """Add the statuses of the shared layers to every operation of ``schema`` (in place)."""
    liveness_paths = {"/health", "/health/live", f"{api_prefix}/health/live"}
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            _declare_path_parameters(path, operation)
            responses = operation.setdefault("responses", {})
            if operation.get("security"):
                _add(responses, 401, 429)
            body = operation.get("requestBody")
            if body is not None:
                statuses = [400, 413, 422]
                if any(_is_json(media) for media in body.get("content", {})):
                    statuses.append(415)
                _add(responses, *statuses)
            if operation.get("parameters"):
                _add(responses, 422)
            _add(responses, 431)
            if path not in liveness_paths:
                _add(responses, 503)
            if method in ("put", "post", "patch", "delete"):
                _add(responses, 507)
    components = schema.get("components", {}).get("schemas", {})
    if "#/components/schemas/HTTPValidationError" not in json.dumps(schema.get("paths", {})):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)


def _declare_path_parameters(path: str, operation: dict[str, Any]) -> None:
    """Every ``{name}`` of the path template as a path parameter: one a dependency reads from the
    request itself (``KeyScopeDependency`` takes ``{bucket}`` so) is not declared by FastAPI."""
    parameters = operation.setdefault("parameters", [])
    declared = {p.get("name") for p in parameters if p.get("in") == "path"}
    for name in PATH_PARAMETER_RE.findall(path):
        if name not in declared:
            parameters.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if not parameters:
        del operation["parameters"]


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")
