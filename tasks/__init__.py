"""The Huey instance (on the queue Redis, separate from the data Redis) and its task modules.

Run the worker with ``python -m tasks.consumer`` (workers and worker type from settings) or
``huey_consumer tasks.huey``; tasks/base.py holds the retry policy and the interval schedules.
"""

from __future__ import annotations

from app.config import get_settings
from tasks.base import create_huey

settings = get_settings()

huey = create_huey(settings)

# Each task module registers its tasks on `huey` when imported: one name per line.
from tasks import (  # noqa: E402
    audit_log,  # noqa: F401
    bucket_purge,  # noqa: F401
    compaction,  # noqa: F401
    ttl_sweep,  # noqa: F401
)
