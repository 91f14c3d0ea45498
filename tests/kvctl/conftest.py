"""kvctl test fixtures: an isolated config file and a fake API behind httpx.MockTransport; for the end
to end tests, the API served by uvicorn."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.platform.embedded_redis import RedisProcess
from kvctl.config import ConfigStore, Session
from kvctl.main import main
from tests.support.api_process import ApiProcess
from tests.support.kvctl_fakes import URL, Result
from tests.support.kvctl_process import serve_api


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kvctl" / "config.json"
    monkeypatch.setenv("KVCTL_CONFIG", str(path))
    for name in ("KVCTL_URL", "KVCTL_PASSWORD", "KVCTL_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def logged_in(config_file: Path) -> ConfigStore:
    store = ConfigStore(config_file)
    store.set_session(URL, Session("alice", "access-1", "refresh-1", time.time() + 600, "tenant-1"))
    return store


@pytest.fixture
def kvctl(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run kvctl in-process against ``handler`` (a function Request -> Response)."""

    def run(argv: list[str], handler: Callable[[httpx.Request], httpx.Response] | None = None) -> Result:
        requests: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            request.read()
            requests.append(request)
            if handler is None:
                raise AssertionError(f"unexpected request {request.method} {request.url}")
            return handler(request)

        code = main(["--url", URL, *argv], transport=httpx.MockTransport(record))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err, requests)

    return run


@pytest.fixture(scope="module")
def api(
    request: pytest.FixtureRequest,
    data_server: RedisProcess,
    queue_server: RedisProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiProcess]:
    """The API served by uvicorn for one test module; with a Huey consumer when the module sets
    ``CONSUMER = True``."""
    consumer = getattr(request.module, "CONSUMER", False)
    with serve_api(data_server, queue_server, tmp_path_factory.mktemp("api"), consumer=consumer) as server:
        yield server
