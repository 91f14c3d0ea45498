"""Each script carries only the definitions of the key prelude and its libraries that it reaches:
every script still loads on a real Redis, keeps each definition it calls (directly or through
another one), and leaves out the ones it never names (cheaper on every EVALSHA)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis

from app.platform.embedded_redis import RedisProcess
from app.platform.scripts import all_script_names, script_source, shake

LIBRARY = """-- header comment
local H = 8
local FIELDS = {'a', 'b'}

-- one
local function one() return H end

-- two uses one
local function two()
  -- an indented comment stays with its function
  return one() + 1
end

local function unused() return FIELDS end
"""


@pytest.fixture(scope="module")
def data(data_server: RedisProcess) -> Iterator[redis.Redis]:
    client = redis.Redis(port=data_server.port)
    yield client
    client.close()


def test_shake_keeps_what_the_body_reaches_in_order_and_drops_the_rest() -> None:
    kept = shake(LIBRARY, "return two()")
    assert "local H = 8" in kept
    assert "local function one()" in kept
    assert "an indented comment stays with its function" in kept
    assert kept.index("local H") < kept.index("local function one") < kept.index("local function two")
    assert "unused" not in kept and "FIELDS" not in kept
    assert "header comment" not in kept  # top-level comments go


def test_a_top_level_statement_that_defines_nothing_is_always_kept() -> None:
    kept = shake(LIBRARY + "redis.setresp(2)\n", "return 1")
    assert "redis.setresp(2)" in kept


@pytest.mark.parametrize("name", all_script_names())
def test_every_script_loads_and_calls_only_what_it_defines(name: str, data: redis.Redis) -> None:
    source = script_source(name)
    data.script_load(source)  # a compile error (a definition cut in half) fails here
    code = re.sub(r"--[^\n]*", "", source)
    defined = set(re.findall(r"local function (\w+)\(", code)) | set(re.findall(r"local (\w+)\s*=", code))
    for parameters in re.findall(r"function\s*\w*\(([^)]*)\)", code):  # functions passed as arguments
        defined.update(re.findall(r"\w+", parameters))
    called = set(re.findall(r"\b([a-z_][a-z0-9_]*)\(", code))
    lua_builtins = {"function", "tonumber", "tostring", "unpack", "pairs", "ipairs", "type", "error", "pcall",
                    "select", "assert", "next", "setmetatable", "getmetatable", "rawget", "rawset"}  # fmt: skip
    missing = called - defined - lua_builtins
    # Methods (redis.call, string.match, cjson.encode...) are called through a table: `x.f(`.
    missing = {f for f in missing if not re.search(rf"[.:]{f}\(", code)}
    assert not missing, f"{name} calls {sorted(missing)} that it no longer defines"


def test_a_small_script_leaves_out_the_library_it_does_not_use() -> None:
    source = script_source("kv_get")
    assert "local function put_entry" not in source
    assert "local function object_meta_key" not in source
    assert "local function entry_key" in source and "local function server_ms" in source
