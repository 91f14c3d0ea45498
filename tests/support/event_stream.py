"""An SSE reader for streams whose ids are strings (the tenant-wide stream's cursors)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    event: str
    data: Any
    id: str | None


class CursorStream:
    """An SSE reader whose ids are strings (the stream's cursors)."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.last_id: str | None = None

    async def next(self, timeout: float = 5.0) -> Event:
        async with asyncio.timeout(timeout):
            name, data, event_id = "", [], None
            async for line in self._lines:
                if line == "":
                    if event_id is not None:
                        self.last_id = event_id
                    if data or name:
                        return Event(name, json.loads("\n".join(data)), event_id)
                    name, data, event_id = "", [], None
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        name = value
                    elif field == "data":
                        data.append(value)
                    elif field == "id":
                        event_id = value
            raise EOFError("the server ended the stream")

    async def take(self, count: int) -> list[Event]:
        return [await self.next() for _ in range(count)]
