"""Byte sizes as people write them (64MiB) and read them (1.5 MiB), and a transfer progress bar that
is drawn only when stderr is a terminal: a log file or a pipe never fills with redraws."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from kvctl.output import Output

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
UNITS = {"": 1, "b": 1}
UNITS.update({f"{letter}{suffix}": factor for letter, factor in (("k", KiB), ("m", MiB), ("g", GiB))
              for suffix in ("", "b", "ib")})  # fmt: skip
SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")
BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


def parse_size(text: str) -> int:
    """``1048576``, ``512K``, ``64MiB``, ``1.5G``: binary units whatever the spelling (K = KB = KiB)."""
    match = SIZE_RE.fullmatch(text)
    unit = UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(f"{text!r} is not a size (e.g. 1048576, 512K, 64MiB, 1G)")
    return int(float(match.group(1)) * unit)


def format_size(size: float) -> str:
    if size < KiB:
        return f"{int(size)} B"
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"  # pragma: no cover - unreachable


class Progress:
    """``label  42% [##########..............] 10.5 MiB/25.0 MiB  8.1 MiB/s`` rewritten in place."""

    def __init__(
        self, out: Output, label: str, total: int | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.out = out
        self.label = label
        self.total = total
        self.done = 0
        self.clock = clock
        self.enabled = out.stderr.isatty()
        self.started = clock()
        self.drawn_at = -REDRAW_SECONDS

    def advance(self, count: int) -> None:
        """``count`` more bytes moved (negative when a part is sent again)."""
        self.done += count
        if self.enabled and self.clock() - self.drawn_at >= REDRAW_SECONDS:
            self.draw()

    def draw(self) -> None:
        now = self.clock()
        self.drawn_at = now
        elapsed = max(now - self.started, 1e-6)
        rate = f"{format_size(self.done / elapsed)}/s"
        if self.total:
            share = min(max(self.done / self.total, 0.0), 1.0)
            filled = int(share * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            text = f"{self.label} {share:4.0%} [{bar}] {format_size(self.done)}/{format_size(self.total)}  {rate}"
        else:
            text = f"{self.label} {format_size(self.done)}  {rate}"
        self.out.progress(text)

    def finish(self) -> None:
        """Draw the final state once, then clear the line (the command prints its own result)."""
        if self.enabled:
            self.draw()
            self.out.end_progress()
