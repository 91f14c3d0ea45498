"""The flat KV API: /kv and /kv/{key}..., all on the bucket named `default`."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from app.kv.deps import KeyScopeDependency
from app.kv.routes import build_key_router
from app.kv.service import DEFAULT_BUCKET


class FlatKeyConvertor(Convertor[str]):
    """A key of the flat API: one path segment, except `buckets`, `watch` and `search`, which name
    the /kv/buckets, /kv/watch and /kv/search routes. With it the flat routes cannot shadow those, so they can be
    matched first (they are the hottest routes)."""

    regex = r"(?!(?:buckets|watch|search)(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("flatkey", FlatKeyConvertor())

router = build_key_router(
    lambda scope: KeyScopeDependency(DEFAULT_BUCKET, scope),
    "kv",
    prefix="/kv",
    key_param="{key:flatkey}",
    operation_prefix="kv",
)
