# ruff: noqa: RUF001, RUF002 - look-alike digits are what this module is about
"""Hostile requests for every route of the app: the routes (walked from the app, described by its
OpenAPI document), Hypothesis strategies of hostile values for each place a request carries input
(path, query, headers, JSON / form / raw bodies), and an in-process client that answers a
Server-Sent Events stream with its first status instead of waiting for a stream that never ends.

What "hostile" means here: lone surrogates (percent-encoded UTF-8 of U+D800 in a URL, raw in a
header, the JSON escape ``\\ud800`` in a body), NUL and control characters, digits that are not
ASCII (² ١ ٣ ০ １), numbers of 5,000 digits, 1e999, -0, huge negatives, NaN/Infinity, whitespace,
very long strings, bytes that are not UTF-8, ``..`` and ``/`` in names, and garbage in the headers the
app reads (If-Match, If-None-Match, Range, If-Range, Last-Event-ID, Content-Type, Content-Length,
X-Request-ID, Authorization, ...). Header values keep to what HTTP can carry (no NUL, CR or LF:
servers refuse those before the app); a literal ``..`` path segment is sent as ``%2E%2E`` because
httpx removes literal dot segments (uvicorn passes both on to the app the same way).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
from fastapi import FastAPI
from hypothesis import strategies as st
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.support.apps import CLIENT_ADDRESS

# -- the routes --------------------------------------------------------------------------------------

PATH_PARAM_RE = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@dataclass(frozen=True)
class Operation:
    """One method of one route: what the OpenAPI document says it takes (nothing for a route left
    out of the document but its path parameters)."""

    method: str
    path: str  # the template, e.g. /api/v1/kv/{key}
    path_params: tuple[str, ...]
    query_params: tuple[str, ...] = ()
    header_params: tuple[str, ...] = ()
    body_types: tuple[str, ...] = ()  # media types of the request body
    body_schema: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    field_names: tuple[str, ...] = ()  # of every request body of the app (for untyped values)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def is_stream(self) -> bool:
        return self.path.endswith("/watch")


def http_routes(application: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path template) of every HTTP route of the app, through the included routers (FastAPI
    0.165 keeps them as ``_IncludedRouter`` entries); WebSockets left out, and the HEAD that
    Starlette adds to a GET route (the same endpoint)."""

    def walk(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            candidates = getattr(route, "effective_candidates", None)
            if candidates is not None:
                yield from walk(candidates())
            else:
                yield route

    for route in walk(list(application.routes)):
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        methods = set(getattr(route, "methods", None) or ())
        if "GET" in methods:
            methods.discard("HEAD")
        for method in sorted(methods):
            yield method, template


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _inline(schema: Any, document: dict[str, Any], depth: int = 0) -> Any:
    """The schema with every $ref replaced by what it names (request bodies nest shallowly)."""
    if isinstance(schema, dict):
        if "$ref" in schema and depth < 8:
            return _inline(_resolve(schema, document), document, depth + 1)
        return {name: _inline(value, document, depth) for name, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(value, document, depth) for value in schema]
    return schema


def operations(application: FastAPI) -> list[Operation]:
    """Every method of every HTTP route of ``application``, with its parameters from the OpenAPI
    document: a route added later is fuzzed without touching the tests."""
    document = application.openapi()
    bodies = [
        content.get("schema", {})
        for path in document.get("paths", {}).values()
        for described in path.values()
        for content in described.get("requestBody", {}).get("content", {}).values()
    ]
    names = tuple(sorted(field_names(_inline(bodies, document))))
    found: list[Operation] = []
    for method, template in http_routes(application):
        described = document.get("paths", {}).get(template, {}).get(method.lower())
        path_params = tuple(PATH_PARAM_RE.findall(template))
        if described is None:
            found.append(Operation(method, template, path_params))
            continue
        params = described.get("parameters", [])
        content = described.get("requestBody", {}).get("content", {})
        schema = next((c.get("schema", {}) for c in content.values()), {})
        found.append(
            Operation(
                method,
                template,
                path_params,
                tuple(p["name"] for p in params if p["in"] == "query"),
                tuple(p["name"] for p in params if p["in"] == "header"),
                tuple(content),
                _inline(schema, document),
                names,
            )
        )
    return found


# -- hostile values ------------------------------------------------------------------------------

LONG = 5000
DIGITS = "9" * LONG
NUMBERS = [
    "0",
    "1",
    "-0",
    "-0.0",
    "-1",
    DIGITS,
    "-" + DIGITS,
    "1" + "0" * LONG,
    "1e999",
    "-1e999",
    "1E400",
    "1e-999",
    "NaN",
    "Infinity",
    "-Infinity",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "-" + "9" * 40,
    "0x10",
    "1_000",
    "+1",
    "1.5",
    "00000000000000000000001",
    "²",
    "¹²³",
    "١",
    "١٣",
    "٣",
    "০",
    "১২",
    "１２",
    "Ⅻ",
    "𝟗",
]
TEXT = [
    "",
    " ",
    "\t",
    "  1  ",
    "\u00a0",
    "\u3000",
    "\x00",
    "a\x00b",
    "\x01\x1f\x7f",
    "\ud800",
    "\udfff",
    "a\udc80z",
    "\ud83d",
    "\ufffd",
    "\ufeff",
    "\u202e",
    "\u200b",
    "😀",
    "é",
    "..",
    ".",
    "../..",
    "../../etc/passwd",
    "a/../b",
    "a/./b",
    "/",
    "//",
    "a/b",
    "a/",
    "\\",
    "..\\..",
    "%",
    "%00",
    "%zz",
    "%2e%2e",
    "*",
    ",",
    '"',
    "'",
    '"1"',
    'W/"1"',
    '"1", W/"2", *',
    '"\ud800"',
    "bytes=0-",
    "bytes=-0",
    "bytes=0-" + DIGITS,
    "bytes=" + DIGITS + "-",
    "bytes=-" + DIGITS,
    "bytes=²-³",
    "bytes=1-0",
    "bytes=0-1,2-3",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Mon, 32 Foo 99999 99:99:99 GMT",
    "Bearer",
    "Bearer ",
    "null",
    "true",
    "[]",
    "{}",
    "x" * LONG,
    "é" * 2000,
    "\ud800" * 100,
    "a:b",
    "name:",
    ":value",
    "a=b:c",
]
INVALID_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc0\xaf",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
]

_any_char = st.characters(codec=None, categories=None)  # every code point, surrogates included
hostile_text = st.one_of(
    st.sampled_from(NUMBERS),
    st.sampled_from(NUMBERS),
    st.sampled_from(TEXT),
    st.sampled_from(TEXT),
    st.text(_any_char, max_size=12),
    st.lists(st.sampled_from(TEXT + NUMBERS), min_size=2, max_size=3).map("".join),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
)


def encode(text: str) -> bytes:
    """UTF-8, lone surrogates included (as the three bytes a careless client sends)."""
    return text.encode("utf-8", "surrogatepass")


def latin1(text: str) -> bytes:
    """Latin-1 where the text has no other characters (a header's '²' as the one byte 0xB2, which
    the app reads back as '²'), else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return encode(text)


hostile_bytes = st.one_of(
    hostile_text.map(encode),
    hostile_text.map(encode),
    hostile_text.map(latin1),
    st.sampled_from(INVALID_UTF8),
    st.tuples(st.sampled_from(INVALID_UTF8), hostile_text.map(encode)).map(lambda parts: parts[1] + parts[0]),
)

# -- the places a request carries them ---------------------------------------------------------------

UNSAFE_HEADER_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def header_value(raw: bytes) -> bytes:
    """What an HTTP/1.1 header can carry (servers refuse NUL, CR and LF before the app sees them)."""
    return UNSAFE_HEADER_BYTES.sub(b"", raw)


def path_segment(raw: bytes, keep_slashes: bool) -> str:
    """Percent-encoded; dots too, so httpx does not resolve a ``..`` segment before the app sees it."""
    return quote_from_bytes(raw, safe="/" if keep_slashes else "").replace(".", "%2E")


# Headers the app reads somewhere (documented as parameters or read from the request).
HEADERS = (
    "If-Match",
    "If-None-Match",
    "Range",
    "If-Range",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "Last-Event-ID",
    "Content-Type",
    "X-Request-ID",
    "X-Object-Description",
    "X-Object-Meta-Fuzz",
    "Accept",
    "Transfer-Encoding",
    "X-Forwarded-For",
    "Idempotency-Key",
)
CONTENT_TYPES = [
    b"application/json",
    b"application/merge-patch+json",
    b"application/x-www-form-urlencoded",
    b"application/octet-stream",
    b"application/json; charset=latin-1",
    b"application/vnd.x+json",
    b"text/plain",
    b"multipart/form-data; boundary=x",
    b"APPLICATION/JSON ;",
]


@dataclass
class Resources:
    """Names that exist when the request is sent, so hostile headers and bodies reach the code
    behind the 404 (Range parsing needs an object, If-Match a key)."""

    bucket: str = "fuzz"
    key: str = "k1"
    name: str = "doc.txt"
    upload_id: str = ""
    part_number: str = "1"
    access_token: str = ""
    refresh_token: str = ""
    key_id: str = ""  # an API key of the tenant (every scope) ...
    api_key: str = ""  # ... and its secret, the credential of some of the valid requests

    def path_value(self, name: str) -> str:
        return str(getattr(self, name, "x"))


# JSON tokens written as they are (numbers no serializer would write, escapes of lone surrogates).
RAW_JSON = [
    "1e999",
    "-1e999",
    "-0",
    "-0.0",
    DIGITS,
    "-" + DIGITS,
    "0." + "0" * LONG + "1",
    "1e-999",
    "NaN",
    "Infinity",
    "-Infinity",
    "9223372036854775808",
    "-9223372036854775809",
    '"\\ud800"',
    '"a\\udfffb"',
    '"\\u0000"',
    '"\\ud800\\ud800"',
    '{"\\ud800": 1}',
    '{"a": "\\ud800"}',
    '["\\udc00"]',
    "null",
    "true",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    '"' + "x" * LONG + '"',
]
TRUNCATED_BODIES = [b"", b"{", b'{"key": ', b"[", b'"\\ud800', b"\xff\xfe{}", b'{"a":1}{"b":2}', b"\x00", b"{}" * 3]
# Valid values by field title, so that the fields left sane pass and the hostile one reaches the code.
SANE = {
    "key": "k1",
    "name": "fuzz",
    "username": "fuzzer",
    "email": "fuzzer@example.com",
    "password": "Secret123",
}
SANE_ANY = ['"v"', '{"a": [1, 2]}', '{"key": "k1", "value": "v"}']  # a value, a batch item


def json_token(value: Any) -> str:
    """JSON text of a Python value; lone surrogates come out as their \\uXXXX escapes."""
    return json.dumps(value, ensure_ascii=True)


hostile_json = st.one_of(
    st.sampled_from(RAW_JSON),
    hostile_text.map(json_token),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


def field_names(schema: Any) -> set[str]:
    """Every property name in a (request body) schema."""
    names: set[str] = set()
    if isinstance(schema, dict):
        names.update((schema.get("properties") or {}).keys())
        for value in schema.values():
            names |= field_names(value)
    elif isinstance(schema, list):
        for value in schema:
            names |= field_names(value)
    return names


@st.composite
def json_for(draw: st.DrawFn, schema: dict[str, Any], names: tuple[str, ...], wild: int, depth: int = 0) -> str:
    """JSON text shaped by ``schema``: each value valid, or hostile with a chance of one in ``wild``
    (0: never), so that the fields left valid pass and a hostile one reaches the code behind them.
    An untyped value (a KV value, a batch item) may be an object with field names of any schema."""
    if wild and (depth > 3 or draw(st.integers(1, wild)) == 1):
        if names and draw(st.integers(0, 3)) == 0:
            chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
            return "{" + ", ".join(f"{json_token(n)}: {draw(hostile_json)}" for n in chosen) + "}"
        return draw(hostile_json)
    variants = [v for v in schema.get("anyOf") or schema.get("oneOf") or () if v.get("type") != "null"]
    if variants:
        return draw(json_for(draw(st.sampled_from(variants)), names, wild, depth + 1))
    kind = schema.get("type")
    properties = schema.get("properties")
    if kind == "object" or properties:
        if properties is None:  # a map (tags)
            value_schema = schema.get("additionalProperties")
            value_schema = value_schema if isinstance(value_schema, dict) else {}
            members = [f'"env": {draw(json_for(value_schema, names, wild, depth + 1))}']
            if wild and draw(st.booleans()):
                members.append(f"{json_token(draw(hostile_text))}: {json_token('x')}")
            return "{" + ", ".join(members) + "}"
        required = set(schema.get("required", ()))
        members = []
        for name, sub in properties.items():
            if name not in required and not draw(st.booleans()):
                continue
            members.append(f"{json_token(name)}: {draw(json_for(sub, names, wild, depth + 1))}")
        return "{" + ", ".join(members) + "}"
    if kind == "array":
        items = draw(st.lists(json_for(schema.get("items") or {}, names, wild, depth + 1), min_size=1, max_size=2))
        return "[" + ", ".join(items) + "]"
    if "const" in schema or "enum" in schema:
        return json_token(draw(st.sampled_from([schema["const"]] if "const" in schema else schema["enum"])))
    if kind == "string":
        return json_token(SANE.get(str(schema.get("title", "")).lower().replace(" ", "_"), "fuzz"))
    if kind == "integer":
        low = int(schema.get("minimum", 1))
        return str(max(low, 1) if "maximum" not in schema else low)
    if kind == "boolean":
        return "true"
    return draw(st.sampled_from(SANE_ANY))


@dataclass
class HostileRequest:
    """One request as it goes out; its repr is what a failure report shows."""

    method: str
    target: str  # raw path and query, percent-encoded
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"...(%d bytes)" % len(self.body)
        headers = [(n.decode(), v if len(v) <= 120 else v[:120] + b"...") for n, v in self.headers]
        target = self.target if len(self.target) <= 400 else self.target[:400] + f"...({len(self.target)} chars)"
        return f"HostileRequest({self.method} {target}\n  headers={headers}\n  body={body!r})"


AUTH_GARBAGE = [
    b"",
    b"Bearer",
    b"Bearer ",
    b"Bearer \xff\xfe",
    b"Bearer \xed\xa0\x80",
    b"Bearer a.b.c",
    b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    b"Basic Zm9vOmJhcg==",
    b"bearer" + b" " * 20,
    b"Bearer " + b"x" * 8000,
    b"Bearer " + DIGITS.encode(),
    b"Bearer kvs_",
    b"Bearer kvs_" + b"0" * 48 + b"a" * 43,  # the shape of an API key, of no tenant
    b"Bearer kvs_" + b"f" * 48 + b"\xff" * 43,
    b"Bearer kvs_" + b"x" * 8000,
]
QUERY_GARBAGE = ["%ED%A0%80=%FF", "=", "&&", "a=%00", "%=%", "x=" + "%FF" * 100, "limit=1&limit=" + DIGITS]


@st.composite
def hostile_requests(draw: st.DrawFn, operation: Operation, resources: Resources) -> HostileRequest:
    """A valid request to ``operation`` (existing resources, the tenant's bearer token, a body of
    valid fields) with one to three places made hostile: a path parameter, a query parameter, a
    header, the body (some fields, or all of it), the Authorization header, the Content-Length."""
    places = [
        *(f"path:{name}" for name in operation.path_params),
        *(f"query:{name}" for name in operation.query_params),
        *(f"header:{name}" for name in sorted({*HEADERS, *operation.header_params} - {"Content-Length"})),
        *(["body", "body"] if operation.body_types else ["body"]),
        "auth",
        "content-length",
        "query",
    ]
    hostile = set(draw(st.lists(st.sampled_from(places), min_size=1, max_size=3, unique=True)))

    path = operation.path
    for name in operation.path_params:
        if f"path:{name}" in hostile:
            segment = path_segment(draw(hostile_bytes), keep_slashes=draw(st.booleans()))
        else:
            segment = quote_from_bytes(encode(resources.path_value(name)), safe="")
        path = re.sub(r"{" + re.escape(name) + r"(?::[^}]*)?}", lambda _: segment, path, count=1)  # noqa: B023
    query = []
    for name in operation.query_params:
        if f"query:{name}" in hostile:
            for _ in range(draw(st.integers(1, 2))):
                query.append(f"{name}={quote_from_bytes(draw(hostile_bytes), safe='')}")
    if "query" in hostile:  # a parameter no route takes, an empty one, raw escapes, a repeated one
        query.append(draw(st.sampled_from(QUERY_GARBAGE)))
    target = path + ("?" + "&".join(query) if query else "")

    headers: list[tuple[bytes, bytes]] = []
    if "auth" not in hostile:
        credential = resources.api_key if resources.api_key and draw(st.integers(0, 3)) == 0 else resources.access_token
        headers.append((b"Authorization", f"Bearer {credential}".encode()))
    elif draw(st.integers(0, 3)):
        headers.append((b"Authorization", header_value(draw(st.one_of(st.sampled_from(AUTH_GARBAGE), hostile_bytes)))))
    for place in sorted(hostile):
        if place.startswith("header:"):
            name = place.removeprefix("header:")
            value = draw(st.one_of(st.sampled_from(CONTENT_TYPES), hostile_bytes)) if name == "Content-Type" else None
            headers.append((name.encode(), header_value(value if value is not None else draw(hostile_bytes))))

    body = b""
    if operation.body_types or "body" in hostile:
        media = draw(st.sampled_from(operation.body_types or ("application/json",)))
        wild = 2 if "body" in hostile else 0
        if wild and draw(st.integers(0, 4)) == 0:
            body = draw(st.one_of(st.sampled_from(TRUNCATED_BODIES), hostile_bytes))
        elif media == "application/x-www-form-urlencoded":
            fields = [*(operation.body_schema.get("properties") or {}), "x"]
            form = [(name, draw(hostile_bytes) if wild else encode(SANE.get(name, "fuzz"))) for name in fields]
            body = "&".join(f"{name}={quote_from_bytes(value, safe='')}" for name, value in form).encode()
        elif media == "application/octet-stream":
            body = draw(st.binary(max_size=64)) * draw(st.sampled_from([1, 1, 1000]))
        else:
            body = encode(draw(json_for(operation.body_schema, operation.field_names, wild)))
        if not any(name == b"Content-Type" for name, _ in headers):
            headers.append((b"Content-Type", media.encode()))
    if "content-length" in hostile:  # one that does not match the body, or is no number at all
        value = draw(st.one_of(st.sampled_from(NUMBERS), st.integers(0, 10**6).map(str))).encode()
        headers.append((b"Content-Length", header_value(value)))
    return HostileRequest(operation.method, target, headers, body)


# -- the sweep: every input of a route, one hostile value at a time ------------------------------

# (text as a URL, query or JSON string carries it, raw JSON where it is a number, raw bytes for a header)
KILLERS: list[tuple[str, str | None]] = [
    ("\ud800", None),
    ("a\x00b", None),
    ("²", None),
    ("١٣", None),
    ("০", None),
    (DIGITS, DIGITS),
    ("1e999", "1e999"),
    ("-0", "-0"),
    ("-" + "9" * 40, "-" + "9" * 40),
    (" \t ", None),
    ("é" * 3000, None),
    ("../..", None),
    ("a/b", None),
]
FAST_KILLERS = [KILLERS[i] for i in (0, 1, 2, 3, 5, 6, 7, 12)]  # the in-process tier's share
HEADER_KILLERS = [DIGITS.encode(), b"\xb2", "١".encode(), b"\xff\xfe", b"-0", b"\xed\xa0\x80"]  # b"\xb2" reads as '²'
FAST_HEADER_KILLERS = HEADER_KILLERS[:2]
SWEPT_HEADERS = (
    "If-Match",
    "If-None-Match",
    "Range",
    "If-Range",
    "Last-Event-ID",
    "X-Request-ID",
    "Content-Type",
    "Content-Length",
    "Authorization",
    "Idempotency-Key",
)


def sane_json(schema: dict[str, Any], depth: int = 0) -> Any:
    """A valid value of ``schema`` (required fields only), as Python data."""
    variants = [v for v in schema.get("anyOf") or schema.get("oneOf") or () if v.get("type") != "null"]
    if variants:
        return sane_json(variants[0], depth + 1)
    if "const" in schema or "enum" in schema:
        return schema["const"] if "const" in schema else schema["enum"][0]
    kind = schema.get("type")
    if (kind == "object" or "properties" in schema) and depth < 4:
        required = schema.get("required", ())
        return {
            name: sane_json(sub, depth + 1)
            for name, sub in (schema.get("properties") or {}).items()
            if name in required
        }
    if kind == "array":
        return [sane_json(schema.get("items") or {}, depth + 1)]
    if kind == "string":
        return SANE.get(str(schema.get("title", "")).lower().replace(" ", "_"), "fuzz")
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1) if "maximum" not in schema else int(schema["minimum"])
    if kind == "boolean":
        return True
    return {"key": "k1", "value": "v"} if depth else "v"


def sweep(
    operation: Operation,
    resources: Resources,
    killers: list[tuple[str, str | None]] = KILLERS,
    header_killers: list[bytes] = HEADER_KILLERS,
) -> Iterator[HostileRequest]:
    """A valid request to ``operation`` with one input made hostile, for every input it documents
    (path, query and header parameters, the body's fields) and each of ``killers``, and for the
    headers of :data:`SWEPT_HEADERS` (read by routes without being documented) each of
    ``header_killers``."""
    auth = (b"Authorization", f"Bearer {resources.access_token}".encode())
    media = operation.body_types[0] if operation.body_types else ""
    sane = sane_json(operation.body_schema) if media.endswith("json") else None

    def request(
        path_values: dict[str, str],
        query: str = "",
        headers: tuple[tuple[bytes, bytes], ...] = (),
        body: bytes | None = None,
    ) -> HostileRequest:
        path = operation.path
        for name in operation.path_params:
            segment = path_values.get(name) or quote_from_bytes(encode(resources.path_value(name)), safe="")
            path = re.sub(r"{" + re.escape(name) + r"(?::[^}]*)?}", lambda _: segment, path, count=1)  # noqa: B023
        names = {name.lower() for name, _ in headers}
        sent = [h for h in [auth] if h[0].lower() not in names] + list(headers)
        if body is None:
            if media == "application/x-www-form-urlencoded":
                fields = operation.body_schema.get("properties") or {}
                body = "&".join(
                    f"{n}={quote_from_bytes(encode(SANE.get(n, 'fuzz')), safe='')}" for n in fields
                ).encode()
            elif media == "application/octet-stream":
                body = b"fuzz"
            else:
                body = encode(json.dumps(sane)) if sane is not None else b""
        if media and b"content-type" not in names:
            sent.append((b"Content-Type", media.encode()))
        return HostileRequest(operation.method, path + (f"?{query}" if query else ""), sent, body)

    for text, raw_number in killers:
        for name in operation.path_params:
            yield request({name: path_segment(encode(text), keep_slashes=True)})
        for name in operation.query_params:
            yield request({}, f"{name}={quote_from_bytes(encode(text), safe='')}")
        for name in operation.header_params:
            yield request({}, headers=((name.encode(), header_value(latin1(text))),))
        if isinstance(sane, dict):
            fields = {**(operation.body_schema.get("properties") or {})}
            for name in fields:
                token = raw_number or json_token(text)
                members = [f"{json_token(k)}: {json.dumps(v)}" for k, v in sane.items() if k != name]
                body = "{" + ", ".join([*members, f"{json_token(name)}: {token}"]) + "}"
                yield request({}, body=encode(body))
    for name in SWEPT_HEADERS:
        for value in header_killers:
            yield request({}, headers=((name.encode(), value),))


# -- sending them ------------------------------------------------------------------------------------


class FirstStatusOnly:
    """ASGI wrapper for an in-process client: a text/event-stream response ends right after its
    start (the client leaves), so a watch stream answers with its status instead of never ending."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        left = asyncio.Event()

        async def receive_until_left() -> Message:
            if left.is_set():
                return {"type": "http.disconnect"}
            return await receive()

        async def send_until_left(message: Message) -> None:
            if left.is_set():
                raise OSError("the client left")  # as a server's send does once the peer is gone
            await send(message)
            if message["type"] == "http.response.start" and any(
                name == b"content-type" and value.startswith(b"text/event-stream")
                for name, value in message.get("headers", [])
            ):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                left.set()

        task = asyncio.ensure_future(self.app(scope, receive_until_left, send_until_left))
        leaving = asyncio.ensure_future(left.wait())
        await asyncio.wait([task, leaving], return_when=asyncio.FIRST_COMPLETED)
        leaving.cancel()
        if not task.done():
            task.cancel()  # the stream's session waits for events: stop it as a disconnect would
            await asyncio.gather(task, return_exceptions=True)
            return
        task.result()


def fuzz_client(application: ASGIApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=FirstStatusOnly(application), client=CLIENT_ADDRESS)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def send(client: httpx.AsyncClient, request: HostileRequest, timeout: float = 10.0) -> httpx.Response:
    """Sends ``request`` as it is: the raw target (httpx keeps percent-escapes) and raw header bytes."""
    headers = list(request.headers)
    if request.body and not any(name.lower() == b"content-length" for name, _ in headers):
        headers.append((b"Content-Length", str(len(request.body)).encode()))
    built = httpx.Request(
        request.method, httpx.URL("http://testserver" + request.target), headers=headers, content=request.body
    )
    async with asyncio.timeout(timeout):
        return await client.send(built)
