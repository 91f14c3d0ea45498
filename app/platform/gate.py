"""A fair concurrency bound: at most ``limit`` holders at once, at most half of them (at least one)
of one key, and waiters served round-robin by key (first come, first served within a key).

The API bounds its bcrypt work with it (app/platform/security.py), keyed by client address: a flood
of logins from one address waits in its own queue and never holds more than half the slots, so a
request from any other address gets a free slot, or the next one.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairGate:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a gate needs at least one slot")
        self.limit = limit
        self.per_key = max(1, limit // 2)
        self.active = 0
        self._active_by_key: dict[str, int] = {}
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for the body of the ``async with``; wait for it behind the other waiters of
        ``key``, taking turns with the other keys."""
        # Invariant: below the limit, no waiter could take a slot (its key holds its share), so a
        # request whose key is below its share goes first only when its key has no waiter either.
        if self.active < self.limit and self._active_by_key.get(key, 0) < self.per_key:
            self._take(key)
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, deque()).append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release(key)  # the slot was handed over as the waiter was cancelled
                else:
                    self._forget(key, turn)
                raise
        try:
            yield
        finally:
            self._release(key)

    def _take(self, key: str) -> None:
        self.active += 1
        self._active_by_key[key] = self._active_by_key.get(key, 0) + 1

    def _forget(self, key: str, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiting[key]

    def _release(self, key: str) -> None:
        self.active -= 1
        held = self._active_by_key[key] - 1
        if held:
            self._active_by_key[key] = held
        else:
            del self._active_by_key[key]
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to the first waiters of the keys next in turn that are below their share."""
        while self.active < self.limit:
            key = next((k for k in self._waiting if self._active_by_key.get(k, 0) < self.per_key), None)
            if key is None:
                return  # nobody waits, or every waiting key holds its share
            queue = self._waiting[key]
            turn = queue.popleft()
            if queue:
                self._waiting.move_to_end(key)  # its next waiter after every other key's
            else:
                del self._waiting[key]
            if not turn.done():
                self._take(key)
                turn.set_result(None)
