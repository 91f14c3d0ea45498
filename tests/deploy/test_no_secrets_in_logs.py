"""No log line of the API (uvicorn's own lines included) holds a password, an access token or a refresh
token, at LOG_LEVEL=DEBUG, after a run that sends each of them every way the API takes them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import websockets

from app.config import Settings
from app.platform.logging import JsonFormatter, TextFormatter, redact
from tests.support.api_process import ApiProcess

pytestmark = pytest.mark.subprocess  # a real uvicorn process and its log

PASSWORD = "Pa55word-NeverLogged-42"


@pytest.fixture
def api(tmp_path: Path, settings: Settings):  # type: ignore[no-untyped-def]
    env = {"REDIS_URL": settings.redis_url, "HUEY_REDIS_URL": settings.huey_redis_url, "LOG_LEVEL": "DEBUG"}
    process = ApiProcess(tmp_path / "api.log", {**env, "LOG_HEALTH_REQUESTS": "true"}).start()
    yield process
    process.stop()


async def test_credentials_never_reach_the_api_log(api: ApiProcess) -> None:
    secrets: list[str] = [PASSWORD]
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        body = {"username": "carol", "email": "carol@example.com", "password": PASSWORD}
        registered = (await client.post("/api/v1/auth/register", json=body)).json()
        secrets += [registered["access_token"], registered["refresh_token"]]
        login = await client.post("/api/v1/auth/login", json={"username": "carol", "password": PASSWORD})
        secrets += [login.json()["access_token"], login.json()["refresh_token"]]
        await client.post("/api/v1/auth/login", json={"username": "carol", "password": PASSWORD + "x"})  # a failure
        form = await client.post("/api/v1/auth/token", data={"username": "carol", "password": PASSWORD})
        secrets.append(form.json()["access_token"])
        refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]})
        secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
        # replaying a spent refresh token: the reuse path logs too
        await client.post("/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]})
        token = form.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        await client.put("/api/v1/kv/k", json={"value": 1}, headers=headers)
        await client.get("/api/v1/kv/k", headers={"Authorization": f"Bearer {token}x"})  # an invalid token
        async with client.stream("GET", "/api/v1/kv/watch", params={"access_token": token, "snapshot": "true"}) as sse:
            async for line in sse.aiter_lines():
                if line.startswith("event: ready"):
                    break
        await client.post(
            "/api/v1/auth/logout", json={"refresh_token": refreshed.json()["refresh_token"]}, headers=headers
        )
    ws_url = api.url.replace("http", "ws") + f"/api/v1/kv/watch/default?since=0&access_token={token}"
    async with websockets.connect(ws_url) as socket:
        await asyncio.wait_for(socket.recv(), 10)
    await asyncio.sleep(0.5)  # let the last lines reach the log file

    log = api.log()
    assert "WebSocket" in log  # uvicorn's request line is there, with its query string redacted
    assert "access_token=[redacted]" in log
    for secret in secrets:
        assert secret not in log
    for token_part in {secret.split(".")[-1] for secret in secrets[1:]}:  # not even a JWT's signature
        assert token_part not in log


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_both_log_formats_redact_every_kind_of_credential(formatter: JsonFormatter | TextFormatter) -> None:
    import logging

    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    message = (
        f"GET /watch?since=0&access_token={jwt} Authorization: Bearer {jwt} "
        f'{{"password": "hunter22", "refresh_token": "abc123"}} api key kvs_0123456789abcdef token=xyz789'
    )
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, message, None, None)
    line = formatter.format(record)
    for secret in (jwt, "hunter22", "abc123", "kvs_0123456789abcdef", "xyz789", "c2lnbmF0dXJl"):
        assert secret not in line, line
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["message"] == redact(message)
