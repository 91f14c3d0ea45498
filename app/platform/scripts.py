"""Lua scripts of app/<capability>/lua/, each prefixed with the key builders of keys.py."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from app.platform.keyspace import LUA_PRELUDE

APP_DIR = Path(__file__).resolve().parents[1]
LUA_DIRS = sorted(APP_DIR.glob("*/lua"))
"""Each capability's Lua scripts (``app/<capability>/lua/*.lua``)."""


def _lua_file(name: str) -> Path:
    for directory in LUA_DIRS:
        path = directory / f"{name}.lua"
        if path.exists():
            return path
    raise FileNotFoundError(f"no Lua script named {name!r} in {[str(d) for d in LUA_DIRS]}")


INCLUDE_PREFIX = "-- include: "


@cache
def script_source(name: str) -> str:
    """The full source of ``lua/<name>.lua``: the key prelude, then every library the script
    names on a leading ``-- include: <_lib>`` line, then the script itself. Read once."""
    body = _lua_file(name).read_text()
    libraries = [
        _lua_file(line.removeprefix(INCLUDE_PREFIX).strip()).read_text()
        for line in body.splitlines()
        if line.startswith(INCLUDE_PREFIX)
    ]
    return "\n".join([LUA_PRELUDE, *libraries, body])


def all_script_names() -> list[str]:
    """Scripts to register; files starting with ``_`` are libraries, only ever included."""
    return sorted(p.stem for d in LUA_DIRS for p in d.glob("*.lua") if not p.stem.startswith("_"))


class Scripts:
    """Every Lua script registered on one client; ``scripts.kv_put(keys=[...], args=[...])``.

    redis-py's Script sends EVALSHA and falls back to EVAL once when the server lost its
    script cache (a restart or failover), on a single server and on a cluster alike.
    """

    def __init__(self, client: object) -> None:
        for name in all_script_names():
            setattr(self, name, client.register_script(script_source(name)))  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:  # only reached for unknown names
        raise AttributeError(f"no Lua script named {name!r}")
