"""A real Huey consumer delivers webhooks (the periodic task registered in app/worker/registry.py);
SIGKILLed in the middle of a delivery, a new one delivers it again (same webhook-id) and everything
written while no worker ran, in order."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.support.consumer import run_consumer
from tests.support.polling import wait_until
from tests.support.webhook_receiver import Receiver
from tests.support.webhooks import create_hook

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

WORKER_ENV = {
    "WEBHOOK_ALLOW_HTTP": "true",
    "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "WEBHOOK_LEASE_SECONDS": "2",
    "WEBHOOK_RETRY_SCHEDULE": "0.2",
    "WEBHOOK_READ_TIMEOUT_SECONDS": "30",
}


async def test_a_worker_killed_mid_delivery_loses_nothing(
    settings: Settings, client: httpx.AsyncClient, tenant: dict, receiver: Receiver, tmp_path: Path
) -> None:
    headers = tenant["headers"]
    hook = await create_hook(client, headers, url=receiver.url, events=["kv.put"])
    receiver.delay = 60  # the receiver holds the first request: the worker is in the middle of it
    await client.put("/api/v1/kv/k", json={"value": 0}, headers=headers)
    with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "first.log", env=WORKER_ENV) as first:
        await wait_until(lambda: receiver.requests, timeout=20, what="the first attempt")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    receiver.delay = 0
    for n in range(1, 6):  # written while no worker runs
        await client.put("/api/v1/kv/k", json={"value": n}, headers=headers)
    with run_consumer(settings.redis_url, settings.huey_redis_url, tmp_path / "second.log", env=WORKER_ENV):
        await wait_until(lambda: len(receiver.accepted) >= 6, timeout=30, what="every change delivered")
    receiver.verify_all(hook["secret"])
    assert [event["data"]["value"] for event in receiver.events()] == [0, 1, 2, 3, 4, 5]
    assert receiver.accepted[0].msg_id == receiver.requests[0].msg_id  # the interrupted one, same webhook-id
