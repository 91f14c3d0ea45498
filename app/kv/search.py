"""Full-text search over the KV buckets with search on: the query language, the search and the
switch of a bucket's index (kv_search.lua, kv_bucket_search.lua; the index itself is kept by every
write, in the same script, by app/kv/lua/_search_lib.lua).

Query language (:func:`parse_query`): words separated by spaces must all match (``AND`` between
them is allowed and changes nothing); ``OR`` (upper case) separates alternatives, and binds looser
than the implicit AND (``a b OR c`` is ``(a AND b) OR c``); ``-word`` or ``NOT word`` excludes;
``"an exact phrase"`` matches those terms next to each other in one string; ``prefix*`` matches any
term starting with ``prefix``. A word is cut into terms by the index's tokenizer (:func:`terms`): a
word of several terms (``e-mail``) is a phrase of them. Parentheses are not grouping: like any other
punctuation they separate terms.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

from app.config import Settings
from app.kv.model import StoredEntry
from app.kv.store import _entry, write_header
from app.platform import keyspace as keys
from app.platform.errors import BucketNotFound, Conflict, InvalidInput, KVStoreError
from app.platform.keyspace import KeySchema
from app.platform.redis import AsyncDataRedis, text
from app.platform.scripts import LuaScript, ScriptArg, ScriptError, Scripts, domain_error

KV_SEARCH = LuaScript("kv_search")
KV_BUCKET_SEARCH = LuaScript("kv_bucket_search")

TERM_MAX_BYTES = 64
"""A longer term is cut to its first 64 bytes, in the index and in queries (SEARCH_TERM_MAX in Lua)."""
TERMS_PER_ENTRY_MAX = 1000
"""Distinct terms indexed per entry (SEARCH_TERMS_MAX in _search_lib.lua)."""
TOKENS_PER_ENTRY_MAX = 10_000
"""Terms of an entry read at all (SEARCH_TOKENS_MAX): the rest of a long text is not indexed."""
QUERY_MAX_CHARS = 1024
QUERY_MAX_TERMS = 16
"""Terms of a query, counting every term of a phrase, prefix and excluded word."""
PREFIX_MAX_EXPANSIONS = 200
"""The most distinct indexed terms of one bucket a ``prefix*`` may stand for; more: 422 query_too_broad."""
CANDIDATES_MAX = 10_000
"""The most entries one alternative may visit in one bucket (its rarest item's matches); more: 422."""
SEARCH_LIMIT_MAX = 100
SEARCH_STEP_KEYS = 500
"""Keys indexed (or taken out of the index) per script call when a bucket's search is switched."""

_TERM_RE = re.compile(rb"[A-Za-z0-9\x80-\xff]+")


def terms(text_: str) -> list[bytes]:
    """The index's terms of ``text_`` (as _search_lib.lua cuts a string): runs of ASCII letters,
    digits and bytes >= 0x80 of its UTF-8, ASCII lowercased, cut to TERM_MAX_BYTES."""
    raw = text_.encode("utf-8", "surrogatepass")
    return [word.lower()[:TERM_MAX_BYTES] for word in _TERM_RE.findall(raw)]


@dataclass(slots=True)
class Item:
    kind: str  # 't' term, 'p' phrase, 'x' prefix
    words: list[bytes]
    negated: bool = False

    def arg(self) -> bytes:
        return (b"-" if self.negated else b"+") + self.kind.encode() + b" " + b" ".join(self.words)


@dataclass(slots=True)
class Query:
    """A parsed query: alternatives (OR), each a list of items that must (or must not) match."""

    alternatives: list[list[Item]] = field(default_factory=list)

    def args(self) -> list[bytes]:
        out: list[bytes] = []
        for index, alternative in enumerate(self.alternatives):
            if index:
                out.append(b"OR")
            out += [item.arg() for item in alternative]
        return out


_TOKEN_RE = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def parse_query(q: str) -> Query:
    """The query ``q`` parsed (see the module's docstring); InvalidInput (422) when it is empty, too
    long, has too many terms, an alternative with nothing that must match, or a prefix of several terms."""
    if len(q) > QUERY_MAX_CHARS:
        raise InvalidInput(f"q is at most {QUERY_MAX_CHARS} characters")
    alternatives: list[list[Item]] = [[]]
    negate_next = False
    count = 0
    for match in _TOKEN_RE.finditer(q):
        minus, phrase, word = match.group(1), match.group(2), match.group(3)
        if word in ("OR", "AND", "NOT"):
            if word == "OR":
                alternatives.append([])
                negate_next = False
            elif word == "NOT":
                negate_next = True
            continue
        negated = negate_next or bool(minus)
        negate_next = False
        if phrase is not None:
            words, prefix = terms(phrase), False
        else:
            if word.startswith("-") and len(word) > 1:
                negated, word = True, word[1:]
            prefix = word.endswith("*")
            words = terms(word)
            if prefix and len(words) > 1:
                raise InvalidInput(f"a prefix* is one term: {word[:80]!r} is several")
        if not words:
            continue  # punctuation only
        count += len(words)
        if count > QUERY_MAX_TERMS:
            raise InvalidInput(f"a query has at most {QUERY_MAX_TERMS} terms")
        kind = "x" if prefix else ("t" if len(words) == 1 else "p")
        alternatives[-1].append(Item(kind, words, negated))
    alternatives = [alternative for alternative in alternatives if alternative]
    if not alternatives:
        raise InvalidInput("q has no term to search for (letters or digits)")
    for alternative in alternatives:
        if all(item.negated for item in alternative):
            raise InvalidInput("every alternative of a query needs a term that must match, not only excluded ones")
    return Query(alternatives)


@dataclass(slots=True)
class Hit:
    bucket: str
    score: float
    entry: StoredEntry


@dataclass(slots=True)
class SearchPage:
    count: int
    hits: list[Hit]
    next_cursor: str | None
    now_ms: int


def encode_cursor(score: str, bucket: str, key: str) -> str:
    raw = json.dumps([score, bucket, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, str]:
    """The (score, bucket, key) of a next_cursor; InvalidInput for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, bucket, key = json.loads(raw)
        float(score)
        if not (isinstance(score, str) and isinstance(bucket, str) and isinstance(key, str)):
            raise ValueError(cursor)
        bucket.encode()
        key.encode()
    except (binascii.Error, ValueError, TypeError, UnicodeError) as exc:
        raise InvalidInput("cursor is not a next_cursor of a search") from exc
    return score, bucket, key


def _translate(error: ScriptError, bucket: str) -> KVStoreError:
    if error.code == "bucket_not_found":
        return BucketNotFound(f"bucket {bucket!r} not found")
    if error.code == "search_off":
        return SearchOff(f"bucket {bucket!r} does not have search on (PATCH /kv/buckets/{bucket} with search: true)")
    if error.code == "query_too_broad":
        return InvalidInput(
            f"query too broad ({error.detail}): a prefix may stand for at most {PREFIX_MAX_EXPANSIONS} terms and "
            f"each alternative's rarest term may match at most {CANDIDATES_MAX} entries per bucket; add a rarer term"
        )
    if error.code == "search_building":
        return SearchBuilding(
            f"bucket {bucket!r} is still being indexed: send PATCH /kv/buckets/{bucket} with search: true "
            "again to finish it"
        )
    return KVStoreError(error.detail or error.code)


class SearchOff(Conflict):
    """The bucket named has no search index (409)."""

    code = "search_off"


class SearchBuilding(Conflict):
    """The bucket's index is not complete yet: its switch to search on was interrupted (409)."""

    code = "search_building"


class SearchService:
    """Search queries and the switch of a bucket's index, on the API's asyncio client."""

    def __init__(self, redis: AsyncDataRedis, scripts: Scripts, settings: Settings) -> None:
        self._redis = redis
        self._scripts = scripts
        self._settings = settings

    async def search(
        self,
        tenant_id: str,
        q: str,
        *,
        bucket: str | None,
        limit: int,
        cursor: str | None,
        key_prefix: str = "",
        buckets: frozenset[str] | None = None,
    ) -> SearchPage:
        """One page of the entries matching ``q``, best first (BM25 score, then bucket and key)."""
        query = parse_query(q)
        if not 1 <= limit <= SEARCH_LIMIT_MAX:
            raise InvalidInput(f"limit is 1-{SEARCH_LIMIT_MAX}")
        after = decode_cursor(cursor) if cursor else ("", "", "")
        allowed = "*" if buckets is None else " ".join(sorted(buckets))
        args: list[ScriptArg] = [
            keys.tenant_prefix(tenant_id),
            limit,
            *after,
            CANDIDATES_MAX,
            PREFIX_MAX_EXPANSIONS,
            key_prefix,
            bucket or "",
            allowed,
            *query.args(),
        ]
        try:
            total, next_cursor, rows, now = await self._scripts.call(
                KV_SEARCH, keys=[KeySchema(tenant_id).search_buckets()], args=args
            )
        except ScriptError as error:
            raise domain_error(error, lambda e: _translate(e, bucket or "")) from error
        hits = [Hit(text(row[0]), float(row[2]), _entry(text(row[1]), row[3])) for row in rows]
        return SearchPage(
            count=int(total),
            hits=hits,
            next_cursor=encode_cursor(*(text(part) for part in next_cursor)) if next_cursor else None,
            now_ms=int(now),
        )

    async def set_search(self, tenant_id: str, bucket: str, on: bool) -> None:
        """Turn the bucket's search on (every key is indexed) or off (its index is dropped), a step of
        SEARCH_STEP_KEYS keys at a time (each step one atomic script; writes meanwhile keep the index
        right). Interrupted, the bucket stays half-way (`building`: its search is refused) until this
        runs again, which resumes."""
        args = [*write_header(self._settings, tenant_id, bucket), "1" if on else "0", SEARCH_STEP_KEYS]
        more = True
        while more:
            try:
                (left,) = await self._scripts.call(
                    KV_BUCKET_SEARCH, keys=[KeySchema(tenant_id).bucket(bucket)], args=args
                )
            except ScriptError as error:
                raise domain_error(error, lambda e: _translate(e, bucket)) from error
            more = bool(int(left))
