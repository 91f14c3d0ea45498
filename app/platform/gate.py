"""A fair concurrency bound: at most ``limit`` holders at once, waiters served round-robin by key.

The API bounds its bcrypt work with it (app/platform/security.py): a flood of logins from one client
address waits in its own queue, and a request from any other address gets the next free slot
instead of queueing behind the whole flood.
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
        self.active = 0
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for the body of the ``async with``; wait for it behind the other waiters of
        ``key``, taking turns with the other keys."""
        if self.active < self.limit and not self._waiting:
            self.active += 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, deque()).append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()  # the slot was handed over as the waiter was cancelled
                else:
                    self._forget(key, turn)
                raise
        try:
            yield
        finally:
            self._release()

    def _forget(self, key: str, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiting[key]

    def _release(self) -> None:
        """Hand the slot to the first waiter of the key next in turn, else free it."""
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            turn = queue.popleft()
            if queue:
                self._waiting.move_to_end(key)  # its next waiter after every other key's
            else:
                del self._waiting[key]
            if not turn.done():
                turn.set_result(None)
                return
        self.active -= 1
