"""Schemathesis over the whole OpenAPI document of the in-process app, as a registered tenant.

Every operation is fuzzed three ways, each a bounded, derandomized Hypothesis run (no shrinking,
no deadline): schema-conforming requests, schema-violating ones, and conforming ones aimed at
resources that exist (a KV bucket with a key, an object bucket with an object and an open
multipart upload), so the success paths are fuzzed too and not only the 404s. Each response must:
not be a 5xx, have a documented status code and Content-Type, match the documented body schema
(problem+json errors included) and headers, reject what violates the schema, and carry no stack
trace.

Left out, because they cannot be fuzzed in-process: the three Server-Sent Events watch endpoints
(streams that end only when the client leaves; tests/system/test_hostile_input.py and tests/watch
check them by hand) and the WebSocket watch (not in OpenAPI).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi import checks as openapi_checks

from app.platform.embedded_redis import RedisProcess
from tests.support.apps import fuzz_target
from tests.support.tenants import PASSWORD

EXAMPLES_PER_RUN = 25
STACK_TRACE_RE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
SEED = {"bucket": "fuzz", "key": "k1", "name": "doc.txt", "part_number": 1}


@schemathesis.check
def no_stack_trace(ctx: Any, response: Any, case: Any) -> bool | None:
    """No response body ever shows a Python traceback or a source location."""
    if STACK_TRACE_RE.search(response.text or ""):
        raise AssertionError(f"stack trace in the response body: {response.text[:300]}")
    return None


CHECKS = [
    not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
    no_stack_trace,
]


class Fuzzing:
    def __init__(self, schema: Any, client: asgi.ASGIClient, headers: dict[str, str]) -> None:
        self.schema = schema
        self.client = client
        self.headers = headers
        self.upload_id = ""

    def ensure_session(self) -> None:
        """Log in again when a fuzzed call ended the session (POST /auth/logout-all)."""
        if self.client.get("/api/v1/auth/me", headers=self.headers).status_code == 401:
            body = {"username": "fuzzer", "password": PASSWORD}
            response = self.client.post("/api/v1/auth/login", json=body)
            assert response.status_code == 200, response.text
            self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    def seed(self) -> None:
        """(Re)create the resources the third pass aims at (an earlier DELETE may have removed them)."""
        api, auth = "/api/v1", self.headers
        self.client.post(f"{api}/kv/buckets", json={"name": "fuzz"}, headers=auth)
        for path in (f"{api}/kv/k1", f"{api}/kv/buckets/fuzz/keys/k1"):
            response = self.client.put(path, json={"value": {"a": [1, 2]}, "tags": {"env": "x"}}, headers=auth)
            assert response.status_code in (200, 201), response.text
        self.client.post(f"{api}/objects/buckets", json={"name": "fuzz"}, headers=auth)
        response = self.client.put(f"{api}/objects/buckets/fuzz/objects/doc.txt", data=b"hello " * 100, headers=auth)
        assert response.status_code in (200, 201), response.text
        uploads = f"{api}/objects/buckets/fuzz/objects/doc.txt/uploads"
        if not self.upload_id or self.client.get(f"{uploads}/{self.upload_id}", headers=auth).status_code != 200:
            response = self.client.post(uploads, headers=auth)
            assert response.status_code == 201, response.text
            self.upload_id = response.json()["upload_id"]


@pytest.fixture(scope="module")
def fuzzing(data_server: RedisProcess, queue_server: RedisProcess) -> Iterator[Fuzzing]:
    """The app on the session's Redis servers (flushed), served in-process by schemathesis's ASGI
    client; rate limits high enough that the fuzzer meets the endpoints, not the limiter."""
    app = fuzz_target(data_server, queue_server)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    try:
        with asgi.get_client(app) as client:
            body = {"username": "fuzzer", "email": "fuzzer@example.com", "password": PASSWORD}
            response = client.post("/api/v1/auth/register", json=body)
            assert response.status_code == 201, response.text
            yield Fuzzing(schema, client, {"Authorization": f"Bearer {response.json()['access_token']}"})
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan shutdown closes its Redis clients


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if not op.path.endswith(("/watch", "/events/stream"))]


def _run(fuzzing: Fuzzing, operation: Any, mode: GenerationMode, path_parameters: dict[str, Any] | None) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=EXAMPLES_PER_RUN,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=fuzzing.headers, checks=CHECKS)

    with contextlib.suppress(Unsatisfiable):  # nothing to violate: no parameters and no body
        fuzz()


@pytest.mark.slow
@pytest.mark.timeout(360)  # thousands of requests: over a minute of CPU, more on a busy machine
def test_every_operation_survives_fuzzing_and_answers_as_documented(fuzzing: Fuzzing) -> None:
    operations = _operations(fuzzing.schema)
    labels = {op.label for op in operations}
    # The whole API is in the run: a router that drops out of the schema fails here.
    for expected in ("PUT /api/v1/kv/{key}", "GET /api/v1/audit", "GET /api/v1/usage", "POST /api/v1/auth/register"):
        assert expected in labels
    assert any(label.startswith("PUT /api/v1/objects/") for label in labels)
    failures: list[str] = []
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        runs: list[tuple[GenerationMode, dict[str, Any] | None]] = [
            (GenerationMode.POSITIVE, None),
            (GenerationMode.NEGATIVE, None),
        ]
        if names and names <= {*SEED, "upload_id"}:
            runs.append((GenerationMode.POSITIVE, {}))
        for mode, path_parameters in runs:
            fuzzing.ensure_session()
            if path_parameters is not None:
                fuzzing.seed()
                path_parameters = {**SEED, "upload_id": fuzzing.upload_id}
                path_parameters = {name: value for name, value in path_parameters.items() if name in names}
            try:
                _run(fuzzing, operation, mode, path_parameters)
            except BaseException as exc:  # schemathesis reports an ExceptionGroup of failures
                if isinstance(exc, KeyboardInterrupt):
                    raise
                where = "existing resources" if path_parameters else mode.value
                failures.append(f"{operation.label} ({where}):\n{exc}")
    assert not failures, "\n\n".join(failures)
