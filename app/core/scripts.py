"""Lua scripts of app/core/lua/, each prefixed with the key builders of keys.py."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from app.core.keys import LUA_PRELUDE

LUA_DIR = Path(__file__).parent / "lua"


@cache
def script_source(name: str) -> str:
    """The full source of ``lua/<name>.lua`` (prelude included), read once."""
    return LUA_PRELUDE + (LUA_DIR / f"{name}.lua").read_text()


def all_script_names() -> list[str]:
    return sorted(p.stem for p in LUA_DIR.glob("*.lua"))


class Scripts:
    """Every Lua script registered on one client; ``scripts.kv_put(keys=[...], args=[...])``.

    redis-py's Script sends EVALSHA and falls back to EVAL once when the server lost its
    script cache (a restart or failover), on a single server and on a cluster alike.
    """

    def __init__(self, client: object) -> None:
        for name in all_script_names():
            setattr(self, name, client.register_script(script_source(name)))  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:  # only reached for unknown names
        raise AttributeError(f"no Lua script named {name!r} in {LUA_DIR}")
