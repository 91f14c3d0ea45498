"""Log lines: JSON with request id, tenant id and the full route template; the access line per
request; health and metrics left out unless asked for; the text format; LOG_LEVEL checked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.platform.logging import JsonFormatter, TextFormatter, gunicorn_logconfig, setup_logging
from tests.support.apps import asgi_client


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging() rewires the root logger onto the captured stdout; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def make_client(settings: Settings):  # type: ignore[no-untyped-def]
    """Builds an app and its client; call it in the test body, so that the app's log handler
    writes to the stdout that capsys captures."""
    made: list[tuple[FastAPI, httpx.AsyncClient]] = []

    async def make(**overrides: object) -> httpx.AsyncClient:
        app = create_app(settings.model_copy(update={"log_level": "INFO", **overrides}))
        client = asgi_client(app)
        made.append((app, client))
        return client

    yield make
    for app, client in made:
        await client.aclose()
        await app.state.data_redis.aclose()
        await app.state.queue_redis.aclose()


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line must be JSON


def access_lines(text: str) -> list[dict]:
    return [line for line in json_lines(text) if line["logger"] == "kvstore.access"]


async def test_access_line_carries_request_tenant_route_status_and_duration(
    make_client,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    client = await make_client()
    registered = await client.post(
        "/api/v1/auth/register", json={"username": "logan", "email": "logan@example.com", "password": "Secret123"}
    )
    assert registered.status_code == 201
    body = registered.json()
    capsys.readouterr()

    response = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}", "X-Request-ID": "req-42"}
    )
    assert response.status_code == 200

    (line,) = access_lines(capsys.readouterr().out)
    assert line["level"] == "INFO"
    assert line["message"] == "GET /api/v1/auth/me 200"
    assert line["request_id"] == "req-42"
    assert line["tenant_id"] == body["tenant_id"]
    assert line["route"] == "/api/v1/auth/me"  # the full template, with the router's prefix
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["timestamp"].endswith("Z") and len(line["timestamp"]) == len("2026-01-05T10:00:00.123Z")


async def test_access_line_of_unmatched_path_has_null_route_and_generated_request_id(
    make_client,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    client = await make_client()
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    (line,) = access_lines(capsys.readouterr().out)
    assert line["route"] is None
    assert line["status"] == 404
    assert line["tenant_id"] is None
    assert line["request_id"] == response.headers["x-request-id"]


async def test_health_and_metrics_are_not_logged_by_default(
    make_client,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    client = await make_client()
    for path in ("/health", "/api/v1/health/live", "/api/v1/health/ready", "/api/v1/health", "/metrics"):
        assert (await client.get(path)).status_code == 200
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    assert [line["route"] for line in access_lines(capsys.readouterr().out)] == ["/api/v1/auth/me"]


async def test_log_health_requests_logs_probes_too(make_client, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(log_health_requests=True)
    assert (await client.get("/api/v1/health/live")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200
    assert [line["route"] for line in access_lines(capsys.readouterr().out)] == ["/api/v1/health/live", "/metrics"]


async def test_text_format_is_one_readable_line(make_client, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(log_format="text")
    response = await client.get("/api/v1/auth/me", headers={"X-Request-ID": "txt-1"})
    out = [line for line in capsys.readouterr().out.splitlines() if "kvstore.access" in line]
    assert len(out) == 1
    assert "INFO kvstore.access [txt-1] GET /api/v1/auth/me 401" in out[0]
    assert "route=/api/v1/auth/me" in out[0] and "status=401" in out[0] and "duration_ms=" in out[0]
    assert response.status_code == 401


async def test_log_level_filters_the_access_line(make_client, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(log_level="WARNING")
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    assert access_lines(capsys.readouterr().out) == []


def test_unknown_log_level_is_refused_with_the_valid_names(settings: Settings) -> None:
    with pytest.raises(ValueError, match="LOG_LEVEL must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG"):
        setup_logging(settings.model_copy(update={"log_level": "verbose"}))


def test_log_level_is_case_insensitive(settings: Settings) -> None:
    setup_logging(settings.model_copy(update={"log_level": "debug"}))
    assert logging.getLogger().level == logging.DEBUG


def test_exception_is_logged_as_one_json_line_with_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("kvstore.test-ops")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("kaboom")
        except RuntimeError:
            logger.exception("it failed")
    finally:
        logger.removeHandler(handler)
    (line,) = json_lines(capsys.readouterr().err)
    assert line["message"] == "it failed"
    assert "RuntimeError: kaboom" in line["exc_info"]


@pytest.mark.parametrize(("log_format", "formatter"), [("json", JsonFormatter), ("text", TextFormatter)])
def test_gunicorn_logconfig_sends_gunicorn_lines_through_the_same_formatter(
    settings: Settings, log_format: str, formatter: type
) -> None:
    config = gunicorn_logconfig(settings.model_copy(update={"log_format": log_format, "log_level": "info"}))
    assert config["formatters"]["kvstore"]["()"] == f"app.platform.logging.{formatter.__name__}"
    assert config["root"] == {"level": "INFO", "handlers": ["stdout"]}
    # gunicorn's own handlers are replaced (no duplicate or plain-text lines on stderr).
    assert config["loggers"]["gunicorn.error"]["handlers"] == []
    assert config["loggers"]["gunicorn.error"]["propagate"] is True


def test_every_library_logger_follows_log_level(restore_logging, capsys) -> None:
    # What uvicorn's config and huey_consumer do before the app's logging is set up.
    for name in ("uvicorn.error", "huey", "huey.consumer"):
        logging.getLogger(name).setLevel(logging.INFO)
    setup_logging(Settings(environment="test", secret_key="k" * 40, log_level="WARNING"))
    for name in ("uvicorn.error", "huey", "huey.consumer", "huey.consumer.Scheduler"):
        logging.getLogger(name).info("quiet %s", name)
        logging.getLogger(name).warning("loud %s", name)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines] == [
        "loud uvicorn.error",
        "loud huey",
        "loud huey.consumer",
        "loud huey.consumer.Scheduler",
    ]


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_hueys_lines_for_every_task_run_are_debug_lines(restore_logging, capsys, level) -> None:
    setup_logging(Settings(environment="test", secret_key="k" * 40, log_level=level))
    logging.getLogger("huey").info("Executing %s", "tasks.sweep: 1")
    logging.getLogger("huey").info("%s executed in %0.3fs", "tasks.sweep: 1", 0.002)
    logging.getLogger("huey.consumer.Scheduler").info("Enqueueing periodic task %s.", "tasks.sweep")
    logging.getLogger("huey.consumer").info("Huey consumer started with %s %s, PID %s at %s", 2, "thread", 1, "now")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    routine = [line for line in lines if "started" not in line["message"]]
    assert [line["message"] for line in lines if "started" in line["message"]] == [
        "Huey consumer started with 2 thread, PID 1 at now"
    ]
    if level == "INFO":
        assert routine == []
    else:
        assert [line["level"] for line in routine] == ["DEBUG", "DEBUG", "DEBUG"]


@pytest.mark.parametrize(("terminal", "expected"), [(True, TextFormatter), (False, JsonFormatter)])
def test_log_format_auto_writes_text_on_a_terminal_and_json_elsewhere(
    restore_logging, monkeypatch, terminal: bool, expected: type
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: terminal)
    setup_logging(Settings(environment="test", secret_key="k" * 40))  # LOG_FORMAT's default: auto
    (handler,) = logging.getLogger().handlers
    assert type(handler.formatter) is expected
