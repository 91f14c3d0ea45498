"""The Redis commands the API sends while a block runs: through redis-py's connections (the API's
connection class) and down the pipelined script connection (app/platform/redis_lane.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest

from app.platform.redis import HealthCheckedConnection
from app.platform.redis_lane import RedisLane

IGNORED = (b"XREAD", b"MAINT_NOTIFICATIONS", b"CLIENT")
"""The session follower's own blocking read and a new connection's set-up: not a request's commands."""


@contextlib.contextmanager
def sent_commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The packed commands (RESP bytes) sent inside the block, either way, in order."""
    sent: list[bytes] = []
    original_send = HealthCheckedConnection.send_packed_command
    original_execute = RedisLane.execute

    async def send(self: HealthCheckedConnection, command: Any, check_health: bool = True) -> None:
        packed = b"".join(command) if isinstance(command, list) else bytes(command)
        if not any(word in packed for word in IGNORED):
            sent.append(packed)
        await original_send(self, command, check_health)

    async def execute(self: RedisLane, *args: Any, redis_us: int = 0) -> Any:
        sent.append(hiredis.pack_command(args))
        return await original_execute(self, *args, redis_us=redis_us)

    with monkeypatch.context() as patch:
        patch.setattr(HealthCheckedConnection, "send_packed_command", send)
        patch.setattr(RedisLane, "execute", execute)
        yield sent


def command_name(packed: bytes) -> bytes:
    """``EVALSHA`` of ``*5\\r\\n$7\\r\\nEVALSHA\\r\\n...``."""
    return packed.split(b"\r\n")[2].upper()
