"""The settings of a test's app."""

from __future__ import annotations

import functools
import os

from app.config import Settings


@functools.cache
def _settings(data_url: str, queue_url: str, environment: frozenset[tuple[str, str]], dotenv: float) -> Settings:
    return Settings(
        environment="test",
        secret_key=os.environ["SECRET_KEY"],
        redis_url=data_url,
        huey_redis_url=queue_url,
        bcrypt_rounds=4,
        log_level="WARNING",
    )


def cached_settings(data_url: str, queue_url: str) -> Settings:
    """Settings for the servers at these URLs, built once per process for the same environment and
    .env: reading the environment and .env costs ~20 ms a time (pydantic-settings), a third of an
    in-process test's set-up. Copy before changing it (the fixture hands out a copy)."""
    dotenv = os.stat(".env").st_mtime if os.path.exists(".env") else 0.0
    # PYTEST_CURRENT_TEST changes with every test and is no setting.
    environment = frozenset(item for item in os.environ.items() if item[0] != "PYTEST_CURRENT_TEST")
    return _settings(data_url, queue_url, environment, dotenv)
