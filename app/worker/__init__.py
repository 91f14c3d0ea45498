"""The worker: the Huey instance (on the queue Redis, separate from the data Redis) and the tasks of
every capability, registered by app/worker/registry.py.

Run it with ``python -m app.worker`` (workers and worker type from settings) or
``huey_consumer app.worker.huey``. Importing this package builds the Huey instance from the process
settings: the API never imports it (it enqueues through app.platform.queue.TaskQueue).
"""

from __future__ import annotations

from app.worker.registry import huey, settings

__all__ = ["huey", "settings"]
