"""Draft"""
from __future__ import annotations

import os
import time

import pytest
import redis
import schemathesis
from hypothesis.errors import Unsatisfiable
from hypothesis import HealthCheck, given, Phase, settings as hsettings
from schemathesis import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi import checks as oa
from schemathesis.checks import not_a_server_error

from app.config import Settings
from app.main import create_app

STATS = {}
CHECKS = [not_a_server_error, oa.status_code_conformance, oa.content_type_conformance,
          oa.response_schema_conformance, oa.response_headers_conformance, oa.negative_data_rejection]

@pytest.fixture(scope="module")
def fuzz_schema(data_server, queue_server):
    for server in (data_server, queue_server):
        client = redis.Redis(port=server.port)
        client.flushall()
        client.close()
    settings = Settings(environment="test", secret_key=os.environ["SECRET_KEY"], redis_url=data_server.url,
                        huey_redis_url=queue_server.url, bcrypt_rounds=4, log_level="CRITICAL",
                        rate_limit_per_second=100000, rate_limit_burst=1000000)
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with asgi.get_client(app) as client:
        r = client.post("/api/v1/auth/register", json={"username": "fuzzer", "email": "f@example.com", "password": "Secret123"})
        token = r.json()["access_token"]
    schema.token = token
    yield schema
    asgi.shutdown_lifespans()


def test_api(fuzz_schema):
    failures = []
    headers = {"Authorization": f"Bearer {fuzz_schema.token}"}
    for result in fuzz_schema.get_all_operations():
        op = result.ok()
        if op.path.endswith("/watch"):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            started = time.monotonic()
            @given(case=op.as_strategy(generation_mode=mode))
            @hsettings(max_examples=15, deadline=None, derandomize=True, database=None,
                       suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            def run(case):
                r = case.call_and_validate(headers=headers, checks=CHECKS)
                STATS.setdefault(op.label, []).append(r.status_code)
                if r.status_code == 400 and mode == GenerationMode.POSITIVE:
                    print("P400", op.label, r.text[:200], repr(case.body)[:200], case.media_type)
            try:
                run()
            except Unsatisfiable:
                pass
            except BaseException as exc:
                failures.append(f"{op.label} [{mode}]: {exc}")
                print("FAIL", op.label, mode, str(exc)[:1500])
            print(f"{op.label} {mode} {time.monotonic()-started:.2f}s")
    for k, v in STATS.items():
        print("STAT", k, len(v), sorted(set(v)))
    assert not failures, "\n\n".join(failures)
