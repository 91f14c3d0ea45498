"""The Lua key builders of LUA_PRELUDE name exactly the keys KeySchema names: each builder is run
through EVAL on the test's real Redis with awkward sample values (non-ASCII, ``:`` and braces) and
compared with the Python method it mirrors."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
import redis

from app.platform.embedded_redis import RedisProcess
from app.platform.keyspace import _LUA_BUILDERS, LUA_PRELUDE, KeySchema, tenant_prefix

TENANTS = ["0b9e4c1e-3f43-4f7e-9d0a-2a1f5cbd7e10", "tenant:{with}:braces", "ténant-☃-ключ"]
SAMPLES: dict[str, list[str]] = {
    "bid": ["1", "4711"],
    "key": ["plain", "a:b:{c}", "ключ/ü ☃:{}"],
    "name": ["photos", "a:{b}", "naïve:名前"],
    "id": ["17", "u:{x}é"],
    "index": ["0", "12"],
    "pair": ["colour=blue", "a:b={c}é", "é=☃:{}"],
    "term": ["rust", "naïve", "0x80"],
}


@pytest.fixture(scope="module")
def data(data_server: RedisProcess) -> Iterator[redis.Redis]:
    client = redis.Redis(port=data_server.port)
    yield client
    client.close()


def python_key(method: str, tenant_id: str, values: dict[str, str]) -> str:
    """What KeySchema.<method> names for these values (Python's tag_index takes tag and value apart)."""
    schema = KeySchema(tenant_id)
    if method == "tag_index":
        tag, _, value = values["pair"].partition("=")
        return schema.tag_index(values["bid"], tag, value)
    if method == "chunk":
        return schema.chunk(values["id"], int(values["index"]))
    return getattr(schema, method)(*values.values())


def lua_key(data: redis.Redis, function: str, tenant_id: str, values: dict[str, str]) -> str:
    """What the Lua builder returns, called as the scripts call it (a chunk index is a number)."""
    names = list(values)
    args = [f"tonumber(ARGV[{i + 2}])" if name == "index" else f"ARGV[{i + 2}]" for i, name in enumerate(names)]
    script = f"{LUA_PRELUDE}\nreturn {function}({', '.join(['ARGV[1]', *args])})"
    reply = data.eval(script, 0, tenant_prefix(tenant_id), *values.values())
    return reply.decode()


def test_the_prelude_defines_every_builder_and_nothing_else() -> None:
    defined = re.findall(r"local function (\w+)\(", LUA_PRELUDE)
    assert defined == [function for function, _, _ in _LUA_BUILDERS]


@pytest.mark.parametrize(("function", "method", "params"), _LUA_BUILDERS, ids=[b[0] for b in _LUA_BUILDERS])
def test_every_lua_key_builder_agrees_with_key_schema(
    data: redis.Redis, function: str, method: str, params: tuple[str, ...]
) -> None:
    for tenant_id in TENANTS:
        for combination in itertools.product(*(SAMPLES[name] for name in params)):
            values = dict(zip(params, combination, strict=True))
            assert lua_key(data, function, tenant_id, values) == python_key(method, tenant_id, values), values
