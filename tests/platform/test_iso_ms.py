"""iso_ms() renders every millisecond timestamp exactly (from integers, no float on the way), the
same text as datetime's own isoformat for the whole datetime range."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.platform.jsonutil import iso_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def reference(ms: int) -> str:
    """datetime arithmetic in integers (exact), rendered by isoformat."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


EDGES = [0, 1, 999, 1000, 1001, -1, -999, -1000, -1001, 1_765_000_000_123, 253_402_300_799_999, -62_135_596_800_000]


@pytest.mark.parametrize("ms", EDGES)
def test_edges(ms: int) -> None:
    assert iso_ms(ms) == reference(ms)


def test_random_timestamps_across_the_range_and_within_one_second() -> None:
    rng = random.Random(16)
    samples = [rng.randrange(-62_135_596_800_000, 253_402_300_800_000) for _ in range(20_000)]
    samples += [1_765_000_000_000 + rng.randrange(1000) for _ in range(2_000)]  # the cached second
    assert [iso_ms(ms) for ms in samples] == [reference(ms) for ms in samples]


def test_the_format() -> None:
    assert iso_ms(1_704_164_645_678) == "2024-01-02T03:04:05.678Z"
    assert iso_ms(1_704_164_645_000) == "2024-01-02T03:04:05.000Z"


def test_outside_the_datetime_range_it_refuses_as_datetime_does() -> None:
    with pytest.raises((ValueError, OverflowError, OSError)):
        iso_ms(253_402_300_800_000)  # year 10000
