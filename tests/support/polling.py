"""Waiting for something another task or process does, by polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_until(
    condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition", interval: float = 0.05
) -> Any:
    """Poll ``condition`` (a function or coroutine function) until it returns something truthy, and
    return that; fail after ``timeout`` seconds naming ``what`` and the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last result: {result!r})")
        await asyncio.sleep(interval)
