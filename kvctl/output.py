"""How kvctl prints: human text by default, JSON with --json; messages and progress on stderr."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from kvctl.errors import CliError

VALUE_COLUMN_WIDTH = 60


def to_json(value: Any, *, indent: int | None = None) -> str:
    separators = None if indent else (",", ":")
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, default=str)


def truncate(text: str, width: int) -> str:
    text = " ".join(text.splitlines()) if "\n" in text else text
    return text if len(text) <= width else text[: width - 1] + "…"


def decode_base64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CliError("the server returned a base64 value that does not decode") from exc


def format_value(value: Any, encoding: str | None = None, width: int | None = None) -> str:
    """A value on one line: strings as they are, other JSON compact, binary as a size."""
    if encoding == "base64":
        text = f"<binary, {len(decode_base64(value))} bytes>"
    elif isinstance(value, str):
        text = value
    else:
        text = to_json(value)
    return truncate(text, width) if width else text


def format_ttl(ttl: Any) -> str:
    return "-" if ttl in (None, "", -1, 0) else f"{ttl}s"  # 0 / null: never expires


def format_tags(tags: Any) -> str:
    if isinstance(tags, dict) and tags:
        return ",".join(f"{k}={v}" for k, v in tags.items())
    if isinstance(tags, list) and tags:
        return ",".join(str(tag) for tag in tags)
    return "-"


class Output:
    """Streams are looked up at each call so that a replaced sys.stdout (tests, pipes) is honoured."""

    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode

    @property
    def stdout(self) -> TextIO:
        return sys.stdout

    @property
    def stderr(self) -> TextIO:
        return sys.stderr

    def data(self, value: Any) -> None:
        """A whole JSON document (--json)."""
        self.stdout.write(to_json(value, indent=2) + "\n")
        self.stdout.flush()

    def event(self, value: Any) -> None:
        """One JSON document per line (a stream of events, --json)."""
        self.stdout.write(to_json(value) + "\n")
        self.stdout.flush()

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def raw(self, payload: bytes) -> None:
        self.stdout.flush()
        self.stdout.buffer.write(payload)
        self.stdout.buffer.flush()

    def note(self, text: str) -> None:
        """A message for the person at the terminal, never mixed into the output of a pipeline."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def progress(self, text: str) -> None:
        """A status line rewritten in place; only on a terminal (a log file would fill with them)."""
        if self.stderr.isatty():
            self.stderr.write("\r\x1b[2K" + text)
            self.stderr.flush()

    def end_progress(self) -> None:
        if self.stderr.isatty():
            self.stderr.write("\r\x1b[2K")
            self.stderr.flush()

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        widths = [len(h) for h in headers]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        # The last column is not padded: no trailing blanks.
        fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + ("  {}" if len(widths) > 1 else "{}")
        self.line(fmt.format(*headers).rstrip())
        for row in rows:
            self.line(fmt.format(*row).rstrip())

    def error(self, error: CliError) -> None:
        if self.json_mode:
            self.stderr.write(to_json(error.as_dict()) + "\n")
        else:
            self.stderr.write(f"error: {error.message}\n")
        self.stderr.flush()
