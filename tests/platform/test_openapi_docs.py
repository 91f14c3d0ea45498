"""The OpenAPI document reads as documentation: every operation has a written summary (not one
FastAPI made from the function's name) and a description, one declared tag, a short stable
operation id, and an example of its JSON body; the tags are described and come in README's order;
no text holds an HTML-like ``<word>`` that Swagger UI would swallow; and the document is valid
OpenAPI 3.1. A route added later without these fails here."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import pytest
import schemathesis
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from app.config import Settings
from app.main import create_app
from tests.support.tenants import SECRET_KEY

# README's order: Authentication (API keys within it), Key-value API, Buckets, Watch, Objects, Coordination,
# Quotas and usage, the audit log, then health and metrics.
EXPECTED_TAGS = [
    "auth",
    "api-keys",
    "kv",
    "buckets",
    "watch",
    "objects",
    "coordination",
    "webhooks",
    "transfer",
    "tenant",
    "audit",
    "health",
]
OPERATION_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_OPERATION_ID = 40
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
CODE_SPAN_RE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
HTML_LIKE_RE = re.compile(r"<[A-Za-z/!][^<>]*>")
# Ids clients generate code from: renaming one breaks them.
PINNED_IDS = {
    ("get", "/api/v1/kv/{key}"): "kv_get",
    ("put", "/api/v1/kv/{key}"): "kv_put",
    ("post", "/api/v1/kv"): "kv_create",
    ("get", "/api/v1/kv/buckets/{bucket}/keys/{key}"): "bucket_kv_get",
    ("put", "/api/v1/kv/buckets/{bucket}/keys/{key}"): "bucket_kv_put",
    ("post", "/api/v1/kv/buckets"): "buckets_create",
    ("put", "/api/v1/objects/buckets/{bucket}/objects/{name}"): "objects_put",
    ("get", "/api/v1/objects/buckets/{bucket}/objects/{name}"): "objects_get",
    ("post", "/api/v1/auth/login"): "auth_login",
    ("post", "/api/v1/auth/api-keys"): "api_keys_create",
    ("get", "/api/v1/kv/watch"): "watch_default_bucket",
    ("get", "/api/v1/usage"): "usage_get",
    ("get", "/api/v1/audit"): "audit_list",
    ("get", "/health/live"): "root_health_live",
}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(environment="test", secret_key=SECRET_KEY, log_level="WARNING"))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def walk_routes(app: FastAPI) -> Iterator[Any]:
    """Every route of the app, through the included routers (FastAPI keeps them as their own entries)."""

    def walk(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            candidates = getattr(route, "effective_candidates", None)
            yield from walk(candidates()) if candidates is not None else [route]

    return walk(list(app.routes))


def route_names(app: FastAPI) -> set[str]:
    """The names and endpoint function names of every route."""
    names: set[str] = set()
    for route in walk_routes(app):
        names.add(getattr(route, "name", "") or "")
        names.add(getattr(getattr(route, "endpoint", None), "__name__", "") or "")
    return names - {""}


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def texts(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(location, text) of every description and summary anywhere in the document."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name in ("description", "summary") and isinstance(value, str):
                yield f"{where}/{name}", value
            else:
                yield from texts(value, f"{where}/{name}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from texts(value, f"{where}/{index}")


def html_like(text: str) -> list[str]:
    """The ``<word>`` tokens outside code spans: Swagger UI renders Markdown and drops them as HTML."""
    return HTML_LIKE_RE.findall(CODE_SPAN_RE.sub("", text))


def test_every_operation_has_a_written_summary_and_a_description(app: FastAPI, document: dict[str, Any]) -> None:
    generated = {name.replace("_", " ").title() for name in route_names(app)}
    missing, made_up = [], []
    for label, operation in operations(document):
        summary, description = operation.get("summary", ""), operation.get("description", "")
        if not summary.strip() or not description.strip():
            missing.append(label)
        if summary in generated:
            made_up.append(f"{label}: {summary!r}")
    assert not missing, f"operations without a summary or a description: {missing}"
    assert not made_up, f"summaries FastAPI made from a function name: {made_up}"
    assert len(list(operations(document))) > 60  # the whole API is in the document


def test_operation_ids_are_short_snake_case_unique_and_pinned(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId", "") for _, operation in operations(document)]
    bad = [i for i in ids if not OPERATION_ID_RE.fullmatch(i) or len(i) > MAX_OPERATION_ID]
    assert not bad, f"operation ids must match {OPERATION_ID_RE.pattern}, at most {MAX_OPERATION_ID} chars: {bad}"
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    pinned = {key: document["paths"][key[1]][key[0]]["operationId"] for key in PINNED_IDS}
    assert pinned == PINNED_IDS


def test_operation_ids_do_not_depend_on_the_order_routers_are_built(document: dict[str, Any]) -> None:
    """A second app (its key routers built again) gives every operation the same id."""
    again = create_app(Settings(environment="test", secret_key=SECRET_KEY, log_level="WARNING")).openapi()
    ids = {label: operation["operationId"] for label, operation in operations(document)}
    assert ids == {label: operation["operationId"] for label, operation in operations(again)}


def test_tags_are_declared_once_described_in_readme_order_and_each_operation_has_one(
    document: dict[str, Any],
) -> None:
    declared = [tag["name"] for tag in document["tags"]]
    assert declared == EXPECTED_TAGS
    assert all(tag.get("description", "").strip() for tag in document["tags"])
    wrong = {label: op.get("tags") for label, op in operations(document) if len(op.get("tags", [])) != 1}
    assert not wrong, f"operations with zero or several tags: {wrong}"
    undeclared = {label: op["tags"][0] for label, op in operations(document) if op["tags"][0] not in declared}
    assert not undeclared, f"operations with an undeclared tag: {undeclared}"
    used = {op["tags"][0] for _, op in operations(document)}
    assert used == set(declared), f"declared but unused tags: {set(declared) - used}"


def test_every_json_request_body_has_an_example(document: dict[str, Any]) -> None:
    without = []
    for label, operation in operations(document):
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            if not (media_type == "application/json" or media_type.endswith("+json")):
                continue
            schema = resolve(content.get("schema", {}), document)
            if not (content.get("examples") or content.get("example") or schema.get("examples")):
                without.append(f"{label} ({media_type})")
    assert not without, f"JSON request bodies without an example: {without}"


def test_no_text_holds_an_html_like_token_outside_backticks(document: dict[str, Any]) -> None:
    found = {where: tokens for where, text in texts(document) if (tokens := html_like(text))}
    assert not found, f"Swagger UI would drop these as HTML (use backticks or &lt;...&gt;): {found}"


def test_the_html_check_catches_what_swagger_ui_swallows() -> None:
    assert html_like('"<sha256>" or *') == ["<sha256>"]
    assert html_like('`"<sha256>"` or `*`') == []
    assert html_like("`id: <revision>`, then Bearer <access token>") == ["<access token>"]
    assert html_like("0 <= n and n > 1, &lt;sha256&gt;") == []


def test_the_if_match_headers_keep_their_placeholder_in_code(document: dict[str, Any]) -> None:
    """The text Swagger UI showed as `"" or *` now shows the placeholder."""
    put = document["paths"]["/api/v1/objects/buckets/{bucket}/objects/{name}"]["put"]
    (if_match,) = [p for p in put["parameters"] if p["name"] == "If-Match"]
    assert '`"<sha256>"`' in if_match["description"]


def test_every_body_example_passes_the_body_model(app: FastAPI, document: dict[str, Any]) -> None:
    """The examples are bodies the API takes: each validates against the route's own pydantic model,
    as a request would (Schemathesis also sends them)."""
    checked = 0
    for route in walk_routes(app):
        model = getattr(getattr(route, "body_field", None), "field_info", None)
        if model is None or not isinstance(model.annotation, type) or not issubclass(model.annotation, BaseModel):
            continue
        for method in route.methods:
            content = document["paths"][route.path_format][method.lower()]["requestBody"]["content"]
            for media_type, described in content.items():
                for name, example in described.get("examples", {}).items():
                    try:
                        model.annotation.model_validate_json(json.dumps(example["value"]))
                    except ValidationError as exc:
                        pytest.fail(f"{method} {route.path_format} example {name!r} ({media_type}): {exc}")
                    checked += 1
    assert checked >= 20


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    # OpenAPI 3.1 lets URLs be relative references (the token URL of the /docs login is), but its
    # meta-schema asks tokenUrl for an absolute URI: check a copy with the token URL made absolute.
    checked = copy.deepcopy(document)
    for scheme in checked["components"]["securitySchemes"].values():
        for flow in scheme.get("flows", {}).values():
            flow["tokenUrl"] = urljoin("http://kvstore.example", flow["tokenUrl"])
    schema = schemathesis.openapi.from_dict(checked)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    assert all(result.ok() for result in schema.get_all_operations())
