"""kvctl objects presign BUCKET NAME: a URL that GETs or PUTs one object without a token.

Prints the URL alone on stdout (``curl "$(kvctl objects presign files a.txt)"``) and when it
expires on stderr; ``--json`` prints the server's answer (url, method, expires_at).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from kvctl.client import API, segment
from kvctl.context import Context
from kvctl.errors import EXIT_OK

MAX_EXPIRES_IN = 604_800


def _method(text: str) -> str:
    method = text.upper()
    if method not in ("GET", "PUT"):
        raise argparse.ArgumentTypeError(f"{text!r} is not GET or PUT")
    return method


def _seconds(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_EXPIRES_IN:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 1 to {MAX_EXPIRES_IN}")
    return int(text)


def _bytes(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of bytes")
    return int(text)


def presign_path(bucket: str, name: str) -> str:
    return f"{API}/objects/buckets/{segment(bucket)}/objects/{segment(name)}/presign"


def cmd_objects_presign(ctx: Context) -> int:
    args = ctx.args
    body: dict[str, Any] = {"method": args.method, "expires_in": args.expires_in}
    if args.content_type is not None:
        body["content_type"] = args.content_type
    if args.max_bytes is not None:
        body["max_bytes"] = args.max_bytes
    result = ctx.client.call("POST", presign_path(args.bucket_name, args.name), json=body)
    if ctx.out.json_mode:
        ctx.out.data(result)
        return EXIT_OK
    ctx.out.line(str(result["url"]))
    ctx.out.note(f"{result['method']} until {result['expires_at']} (ends earlier if this session logs out)")
    return EXIT_OK


def add_presign_command(command: Callable[..., argparse.ArgumentParser], under: Any) -> None:
    """``presign`` under the ``objects`` group of the parser (``command`` is main's helper)."""
    p = command("presign", "a URL that reads or writes one object without a token", cmd_objects_presign, under=under)
    p.add_argument("bucket_name", metavar="BUCKET")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--method", type=_method, default="GET", help="GET (the default; HEAD too) or PUT")
    p.add_argument(
        "--expires-in", type=_seconds, default=3600, metavar="SECONDS", help="default 3600, at most 604800 (7 days)"
    )
    p.add_argument("--content-type", help="PUT: the Content-Type the upload must carry")
    p.add_argument("--max-bytes", type=_bytes, metavar="BYTES", help="PUT: the most bytes the upload may have")
