"""Every error is application/problem+json with a stable code; every response has X-Request-ID."""

from __future__ import annotations

import logging
import re

import pytest

from app.main import create_app
from app.platform.context import request_id_var
from tests.support.apps import serve
from tests.support.problems import assert_problem


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v1/auth/nope", "/api/v1/health/nope"])
async def test_unknown_route_is_404_problem(client, path):
    assert_problem(await client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/health"), ("DELETE", "/api/v1/auth/me"), ("GET", "/api/v1/auth/login"), ("PUT", "/api/v1/health")],
)
async def test_wrong_method_is_405_problem_with_allow(client, method, path):
    response = await client.request(method, path)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"]
    assert method not in response.headers["allow"]


async def test_validation_error_is_422_problem_listing_each_field(client):
    response = await client.post(
        "/api/v1/auth/register", json={"username": "x", "email": "not-an-email", "password": "short"}
    )
    body = assert_problem(response, 422, "validation_error")
    fields = {error["field"]: error for error in body["errors"]}
    assert set(fields) == {"body.username", "body.email", "body.password"}
    for error in body["errors"]:
        assert error["message"]
        assert error["type"]
    for field in fields:
        assert field in body["detail"]


async def test_validation_error_does_not_echo_the_input(client):
    secret = "Sup3r-secret-" + "x" * 80
    response = await client.post(
        "/api/v1/auth/register", json={"username": "alice", "email": "a@b.c", "password": secret}
    )
    assert_problem(response, 422, "validation_error")
    assert secret not in response.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"null", "application/json"),
        (b"", "application/json"),
    ],
)
async def test_malformed_bodies_are_422_problems_not_500(client, content, content_type):
    response = await client.post("/api/v1/auth/login", content=content, headers={"content-type": content_type})
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"]


async def test_a_form_body_on_a_json_endpoint_is_415_problem(client):
    response = await client.post(
        "/api/v1/auth/login", content=b"username=alice", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_problem(response, 415, "unsupported_media_type")


async def test_undecodable_body_is_400_problem_not_500(client):
    response = await client.post(
        "/api/v1/auth/login", content=b"\xff\xfe\x00", headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "bad_request")


async def test_missing_form_fields_of_the_token_endpoint_are_named(client):
    body = assert_problem(await client.post("/api/v1/auth/token", data={}), 422, "validation_error")
    assert {error["field"] for error in body["errors"]} == {"body.username", "body.password"}


async def test_request_id_is_generated_when_absent(client):
    first = await client.get("/health")
    second = await client.get("/nope")
    for response in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/health", "/api/v1/health/live", "/nope", "/api/v1/auth/me"])
async def test_request_id_is_echoed_when_sent(client, path):
    response = await client.get(path, headers={"X-Request-ID": "client-id-123"})
    assert response.headers["x-request-id"] == "client-id-123"
    if response.status_code >= 400:
        assert response.json()["request_id"] == "client-id-123"


@pytest.mark.parametrize("bad_id", ["has space", "a" * 129, "new\\nline", "<script>"])
async def test_malformed_request_id_is_replaced(client, bad_id):
    response = await client.get("/health", headers={"X-Request-ID": bad_id})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_request_id_appears_once(client):
    response = await client.get("/nope", headers={"X-Request-ID": "only-once"})
    assert response.headers.get_list("x-request-id") == ["only-once"]


class RecordingHandler(logging.Handler):
    """Keeps each record with the request id that was current when it was logged."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[tuple[logging.LogRecord, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record, request_id_var.get()))


async def test_unexpected_exception_is_500_problem_without_stack_trace(settings):
    app = create_app(settings)

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail: password=hunter2")

    handler = RecordingHandler()
    logging.getLogger("kvstore").addHandler(handler)
    try:
        async with serve(app) as http:
            response = await http.get("/test-only/boom", headers={"X-Request-ID": "req-500"})
            after = await http.get("/health")
    finally:
        logging.getLogger("kvstore").removeHandler(handler)
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-500"
    for leak in ("Traceback", "RuntimeError", "hunter2", "boom", ".py"):
        assert leak not in response.text
    # The exception is logged server-side, with its traceback and the request id.
    logged = [(record, request_id) for record, request_id in handler.records if record.exc_info]
    assert len(logged) == 1
    record, request_id = logged[0]
    assert request_id == "req-500"
    assert "hunter2" in str(record.exc_info[1])
    assert after.status_code == 200


async def test_openapi_documents_problems_and_the_docs_login(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    schema = response.json()
    assert "Problem" in schema["components"]["schemas"]
    # The Authorize button of /docs logs in through the OAuth2 password form.
    schemes = schema["components"]["securitySchemes"].values()
    assert any(s.get("flows", {}).get("password", {}).get("tokenUrl") == "/api/v1/auth/token" for s in schemes)
    login = schema["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert "application/problem+json" in login["401"]["content"]
    assert "application/problem+json" in login["503"]["content"]


async def test_a_validators_message_comes_without_pydantics_prefix(client) -> None:
    body = {"username": "no spaces allowed", "email": "a@example.com", "password": "Secret123"}
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    problem = response.json()
    (error,) = problem["errors"]
    assert error == {
        "field": "body.username",
        "message": "username must be 3-32 characters of a-z, 0-9, '_', '.' or '-'",
        "type": "value_error",
    }
    assert "Value error" not in problem["detail"]
