"""The KV rules that need no storage and no HTTP: what a key and a bucket name may be, how deep a
JSON value may nest, and RFC 7396 merge patch. Shared by the service and the HTTP schemas."""

from __future__ import annotations

import json
import re
from typing import Any

KEY_RE = re.compile(r"^[A-Za-z0-9._:@=+~,-]+$")
BUCKET_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_json_depth(value: Any, limit: int) -> None:
    """ValueError when ``value`` nests deeper than ``limit`` (deep values would exhaust the stack later)."""
    if json_depth(value) > limit:
        raise ValueError(f"the value nests arrays/objects deeper than {limit} levels")


def json_text(value: Any) -> str:
    """The compact JSON text stored for ``value``; ValueError when it is no JSON (NaN or an infinite
    number, which Python parses from ``1e999``) or holds a lone surrogate, which UTF-8 cannot carry."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError("the value holds a number that is not JSON (NaN or out of range)") from exc
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError("the value holds a lone UTF-16 surrogate, which is not Unicode text") from exc
    return text


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result
