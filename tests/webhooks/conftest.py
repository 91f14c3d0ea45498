"""Fixtures of the webhook tests: settings that let the worker call receivers on http://127.0.0.1
with quick retries, and a running receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.config import Settings
from tests.support.webhook_receiver import Receiver, run_receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "rate_limit_per_second": 0,
            "webhook_allow_http": True,
            "webhook_allowed_hosts": "127.0.0.1",
            "webhook_retry_schedule": "0.2,0.4",
            "webhook_read_timeout_seconds": 1.0,
            "webhook_connect_timeout_seconds": 1.0,
            "webhook_lease_seconds": 3,
        }
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as running:
        yield running
