"""FairGate: at most `limit` holders; waiters are served round-robin by key, FIFO within a key, and a
cancelled waiter neither keeps nor loses a slot."""

from __future__ import annotations

import asyncio

import pytest

from app.platform.gate import FairGate


async def hold(gate: FairGate, key: str, order: list[str], release: asyncio.Event) -> None:
    async with gate.slot(key):
        order.append(key)
        await release.wait()


async def test_waiters_take_turns_by_key():
    gate, order, release = FairGate(1), [], asyncio.Event()
    first = asyncio.create_task(hold(gate, "flood", order, asyncio.Event()))
    await asyncio.sleep(0)
    release.set()
    tasks = [asyncio.create_task(hold(gate, "flood", order, release)) for _ in range(5)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(hold(gate, "user", order, release)))
    await asyncio.sleep(0)
    assert gate.active == 1 and gate.waiting == 6
    first.cancel()
    await asyncio.gather(*tasks)
    # The user's turn comes after one more of the flood's, not after all five.
    assert order == ["flood", "flood", "user", "flood", "flood", "flood", "flood"]
    assert gate.active == 0 and gate.waiting == 0


async def test_at_most_limit_hold_at_once():
    gate, running, most = FairGate(3), [0], [0]

    async def work(key: str) -> None:
        async with gate.slot(key):
            running[0] += 1
            most[0] = max(most[0], running[0])
            await asyncio.sleep(0.001)
            running[0] -= 1

    await asyncio.gather(*(work(f"k{i % 4}") for i in range(40)))
    assert most[0] == 3
    assert gate.active == 0


async def test_a_cancelled_waiter_gives_its_place_up():
    gate, order, release = FairGate(1), [], asyncio.Event()
    holder = asyncio.create_task(hold(gate, "a", order, release))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold(gate, "b", order, release))
    last = asyncio.create_task(hold(gate, "c", order, release))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    assert gate.waiting == 1
    release.set()
    await asyncio.gather(holder, last)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert order == ["a", "c"]
    assert gate.active == 0


async def test_one_key_holds_at_most_half_the_slots():
    gate, order, release = FairGate(4), [], asyncio.Event()
    flood = [asyncio.create_task(hold(gate, "flood", order, release)) for _ in range(6)]
    await asyncio.sleep(0)
    assert gate.active == 2 and gate.waiting == 4  # two slots stay free for everyone else
    others = [asyncio.create_task(hold(gate, key, order, release)) for key in ("a", "b", "c")]
    await asyncio.sleep(0)
    assert order == ["flood", "flood", "a", "b"]  # at once, without waiting for the flood
    release.set()
    await asyncio.gather(*flood, *others)
    assert sorted(order) == ["a", "b", "c"] + ["flood"] * 6
    assert gate.active == 0 and gate.waiting == 0
