"""The seam to Lua: every script of ``app/<capability>/lua/``, its source, how it is called and the one
reply convention every script follows.

A script's source is the key prelude generated from the key schema (app/platform/keyspace.py), then
every library it names on a leading ``-- include: <_lib>`` line (a library's own includes come
before it), then the script itself; of the
prelude and the libraries, only the top-level definitions the script reaches (directly or through
another definition it keeps) are kept. Redis runs a script's whole source on every EVALSHA, so each
definition it does not use (a closure or a table built per call) would cost every call: the key
prelude and _kv_lib.lua in full were about 15 us of the ~50 us a kv_get call costs inside Redis.

Reply convention: a script answers ``{'OK', ...}`` on success and ``{'E', code, detail}`` (optionally
``{'E', code, detail, index}`` for the item of a batch) when it refuses. :func:`unwrap` is the one
decoder: it returns the values after ``'OK'`` or raises :class:`ScriptError`, which the capability's
store turns into a domain error (``quota_exceeded`` is the same everywhere: :func:`quota_error`).

Only a capability's ``store.py`` (and its tasks, for the worker's sync client) runs its scripts::

    KV_PUT = LuaScript("kv_put")
    values = await scripts.call(KV_PUT, keys=[...], args=[...])

redis-py's Script sends EVALSHA and falls back to EVAL once when the server lost its script cache
(a restart or failover), on a single server and on a cluster alike.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from redis.exceptions import NoScriptError

from app.platform.errors import KVStoreError, QuotaExceeded, StorageQuotaExceeded
from app.platform.keyspace import LUA_PRELUDE
from app.platform.redis import AsyncDataRedis, SyncDataRedis, text
from app.platform.redis_lane import RedisLane

APP_DIR = Path(__file__).resolve().parents[1]
LUA_DIRS = sorted(APP_DIR.glob("*/lua"))
"""Each capability's Lua scripts (``app/<capability>/lua/*.lua``)."""

INCLUDE_PREFIX = "-- include: "

ScriptArg = str | bytes | int | float
"""What a script argument may be (redis-py encodes it)."""


def _lua_file(name: str) -> Path:
    for directory in LUA_DIRS:
        path = directory / f"{name}.lua"
        if path.exists():
            return path
    raise FileNotFoundError(f"no Lua script named {name!r} in {[str(d) for d in LUA_DIRS]}")


# A top-level definition of one name: ``local function name(`` or ``local name =`` at column 0.
_DEFINITION_RE = re.compile(r"local\s+(?:function\s+([A-Za-z_]\w*)\s*\(|([A-Za-z_]\w*)\s*=)")
_IDENTIFIER_RE = re.compile(r"[A-Za-z_]\w*")


def _definitions(source: str) -> list[tuple[str | None, list[str]]]:
    """``source`` cut into top-level pieces, each (the name it defines, its lines). A definition runs
    until the next line at column 0 other than its closing ``end``, ``}`` or ``)``; a piece without a
    name (comments, any other statement) is kept whatever the script uses."""
    pieces: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in source.splitlines():
        match = _DEFINITION_RE.match(line)
        if match:
            pieces.append((match.group(1) or match.group(2), [line]))
        elif pieces[-1][0] is not None and line[:1] not in ("", " ", "\t", "}", ")") and not line.startswith("end"):
            pieces.append((None, [line]))  # a comment or a statement at column 0 ends the definition
        else:
            pieces[-1][1].append(line)
    return pieces


def _code(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() and not line.lstrip().startswith("--")]


def shake(library: str, body: str) -> str:
    """The top-level definitions of ``library`` that ``body`` reaches, in their order (with any
    top-level statement that defines no name).

    Reached means named (as any identifier) by the body or by a definition already kept, so a name
    in a string or a comment may keep a definition the script does not need: never the other way."""
    pieces = _definitions(library)
    defined = {name: "\n".join(lines) for name, lines in pieces if name is not None}
    pending = set(_IDENTIFIER_RE.findall(body))
    for name, lines in pieces:
        if name is None:
            pending.update(_IDENTIFIER_RE.findall("\n".join(_code(lines))))
    wanted: set[str] = set()
    while pending:
        name = pending.pop()
        if name in defined and name not in wanted:
            wanted.add(name)
            pending.update(_IDENTIFIER_RE.findall(defined[name]))
    kept: list[str] = []
    for name, lines in pieces:
        if name is None:
            kept.extend(_code(lines))
        elif name in wanted:
            kept.extend(lines)
    return "\n".join(kept)


@cache
def script_source(name: str) -> str:
    """The source of ``<name>.lua``: what it uses of the key prelude and of the libraries it
    includes, then the script. Read once."""
    body = _lua_file(name).read_text()
    return "\n".join([shake("\n".join([LUA_PRELUDE, *_libraries(body, [])]), body), body])


def _libraries(source: str, seen: list[str]) -> list[str]:
    """The libraries ``source`` includes, each once, a library's own includes before it."""
    out: list[str] = []
    for line in source.splitlines():
        if line.startswith(INCLUDE_PREFIX):
            name = line.removeprefix(INCLUDE_PREFIX).strip()
            if name not in seen:
                seen.append(name)
                library = _lua_file(name).read_text()
                out += [*_libraries(library, seen), library]
    return out


def all_script_names() -> list[str]:
    """Every script; files starting with ``_`` are libraries, only ever included."""
    return sorted(p.stem for d in LUA_DIRS for p in d.glob("*.lua") if not p.stem.startswith("_"))


@dataclass(frozen=True, slots=True)
class LuaScript:
    """One script, named by its file (``kv_put`` is ``app/kv/lua/kv_put.lua``). ``redis_us``: what a
    call typically costs inside Redis (`make bench`'s us/script column), for the lane's batching
    (app/platform/redis_lane.py FLUSH_AT_US); the default is a small read's."""

    name: str
    redis_us: int = 10

    def __post_init__(self) -> None:
        _lua_file(self.name)  # a typo fails at import, not at the first call

    @property
    def source(self) -> str:
        return script_source(self.name)


class ScriptError(Exception):
    """A script's refusal, ``{'E', code, detail[, index]}``: the store turns it into a domain error."""

    def __init__(self, code: str, detail: str, index: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.index = index


def unwrap(reply: Any) -> list[Any]:
    """The values of an ``{'OK', ...}`` reply; raises :class:`ScriptError` for ``{'E', code, detail}``."""
    if not isinstance(reply, list) or not reply:
        raise TypeError(f"a script reply is a non-empty list, not {reply!r}")
    status = reply[0]
    if status in (b"OK", "OK"):
        return reply[1:]
    if status in (b"E", "E"):
        index = int(reply[3]) if len(reply) > 3 and reply[3] not in (b"", "") else None
        detail = text(reply[2]) if len(reply) > 2 else ""
        raise ScriptError(text(reply[1]), detail, index)
    raise TypeError(f"a script reply starts with 'OK' or 'E', not {status!r}")


def quota_error(detail: str) -> KVStoreError:
    """The problem for a ``quota_exceeded`` refusal (``<quota> <limit> <usage>``): 413 for bytes, 429 for counts."""
    name, limit, used = detail.split()
    message = f"quota {name} exceeded: limit {limit}, current usage {used}"
    if name.endswith("bytes"):
        return StorageQuotaExceeded(message, quota=name, limit=int(limit), usage=int(used))
    return QuotaExceeded(message, quota=name, limit=int(limit), usage=int(used))


ErrorTranslator = Callable[[ScriptError], KVStoreError]


def domain_error(error: ScriptError, translate: ErrorTranslator) -> KVStoreError:
    """The domain error for a script's refusal: quotas here, everything else by the store's ``translate``."""
    if error.code == "quota_exceeded":
        return quota_error(error.detail)
    return translate(error)


class _Registered:
    """Each script registered once on one client (redis-py's Script: EVALSHA, EVAL once on NOSCRIPT)."""

    def __init__(self, client: AsyncDataRedis | SyncDataRedis) -> None:
        self._client = client
        self._registered: dict[str, Callable[..., Any]] = {}

    def _script(self, script: LuaScript) -> Callable[..., Any]:
        registered = self._registered.get(script.name)
        if registered is None:
            registered = cast(Callable[..., Any], self._client.register_script(script.source))
            self._registered[script.name] = registered
        return registered


class Scripts(_Registered):
    """The scripts on the API's asyncio client of the data Redis; with a ``lane`` (a standalone data
    Redis, app/platform/redis_lane.py), sent down the process's one pipelined connection instead."""

    def __init__(self, client: AsyncDataRedis, lane: RedisLane | None = None) -> None:
        super().__init__(client)
        self._lane = lane
        self._shas: dict[str, str] = {}

    async def run(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg], redis_us: int | None = None
    ) -> Any:
        """The raw reply (for the few scripts whose reply is a plain value). ``redis_us``: this call's
        cost inside Redis, when it is not the script's usual ``redis_us`` (a batch's, by its size)."""
        lane = self._lane
        if lane is None:
            return await self._script(script)(keys=list(keys), args=list(args))
        sha = self._shas.get(script.name)
        if sha is None:
            sha = self._shas[script.name] = hashlib.sha1(script.source.encode(), usedforsecurity=False).hexdigest()
        cost = script.redis_us if redis_us is None else redis_us
        try:
            return await lane.execute(b"EVALSHA", sha, len(keys), *keys, *args, redis_us=cost)
        except NoScriptError:  # not run: loading it and sending it again is safe
            await lane.execute(b"SCRIPT", b"LOAD", script.source)
            return await lane.execute(b"EVALSHA", sha, len(keys), *keys, *args, redis_us=cost)

    async def aclose(self) -> None:
        if self._lane is not None:
            await self._lane.aclose()

    async def call(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg], redis_us: int | None = None
    ) -> list[Any]:
        """The values of the ``{'OK', ...}`` reply; :class:`ScriptError` for a refusal."""
        return unwrap(await self.run(script, keys, args, redis_us))


class SyncScripts(_Registered):
    """The scripts on the worker's (blocking) client of the data Redis."""

    def __init__(self, client: SyncDataRedis) -> None:
        super().__init__(client)

    def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """The raw reply (for the few scripts whose reply is a plain value)."""
        return self._script(script)(keys=list(keys), args=list(args))

    def call(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> list[Any]:
        """The values of the ``{'OK', ...}`` reply; :class:`ScriptError` for a refusal."""
        return unwrap(self.run(script, keys, args))
