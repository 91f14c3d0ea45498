"""What background job code runs with: the settings, a sync client of the data Redis and the Lua
scripts, built once per process (again in a forked worker process, which must not share its
parent's connections). Capabilities' ``tasks.py`` call :func:`worker_context`; the worker package
turns those functions into Huey tasks; tests point them at their own Redis with :func:`configure`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from app.config import Settings, get_settings
from app.platform.redis import SyncDataRedis, create_sync_data_redis
from app.platform.scripts import SyncScripts


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    data_redis: SyncDataRedis
    scripts: SyncScripts


_context: WorkerContext | None = None
_context_pid: int | None = None
_context_lock = threading.Lock()


def _build_context(settings: Settings) -> WorkerContext:
    client = create_sync_data_redis(settings)
    return WorkerContext(settings=settings, data_redis=client, scripts=SyncScripts(client))


def worker_context() -> WorkerContext:
    """The process's settings, data Redis client and scripts, built on first use (and again in a
    forked worker process, which must not share its parent's connections)."""
    global _context, _context_pid
    context, pid = _context, os.getpid()
    if context is not None and _context_pid == pid:
        return context
    with _context_lock:
        if _context is None or _context_pid != pid:
            _context = _build_context(_context.settings if _context is not None else get_settings())
            _context_pid = pid
        return _context


def configure(settings: Settings | None) -> WorkerContext | None:
    """Point tasks at ``settings`` (tests, embedding); None goes back to the process settings."""
    global _context, _context_pid
    with _context_lock:
        if _context is not None and _context_pid == os.getpid():
            _context.data_redis.close()
        _context = _build_context(settings) if settings is not None else None
        _context_pid = os.getpid() if settings is not None else None
        return _context
