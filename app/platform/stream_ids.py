"""Redis stream ids and revisions read from a client (a cursor, a ``since``, a ``Last-Event-ID``).

Redis takes a stream id ``<ms>-<seq>`` whose parts are unsigned 64-bit integers; anything else is a
Redis error, which would surface as a 500. So untrusted text is checked here first: ASCII digits only
(``str.isdigit`` also takes "²", ``int`` Arabic-Indic digits), 1 to 20 of them, each part at most 2^64-1.
"""

from __future__ import annotations

import re
from typing import Final

MAX_PART: Final = 2**64 - 1
"""The largest ms or seq part of a stream id (and so the largest revision)."""

_PART: Final = re.compile(r"[0-9]{1,20}")  # [0-9], not \d: \d matches every Unicode digit


def parse_part(text: str) -> int | None:
    """The value of one stream id part (a revision), or None when ``text`` is not one."""
    if not _PART.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_PART else None


def parse_stream_id(text: str) -> tuple[int, int] | None:
    """``(ms, seq)`` of a complete stream id ``<ms>-<seq>``, or None when ``text`` is not one."""
    ms_text, dash, seq_text = text.partition("-")
    if not dash:
        return None
    ms, seq = parse_part(ms_text), parse_part(seq_text)
    if ms is None or seq is None:
        return None
    return ms, seq
