"""`proxy.upstream.deadline`: attempt timeouts on one shared timer, with `asyncio.timeout`'s contract."""

from __future__ import annotations

import asyncio

import pytest

from proxy.upstream.deadline import TICK, Deadlines


async def _sleep_within(deadlines: Deadlines, limit: float, sleep: float) -> str:
    async with deadlines.within(limit):
        await asyncio.sleep(sleep)
    return "done"


def test_a_block_past_its_deadline_raises_timeout_error_within_a_tick() -> None:
    asyncio.run(_test_a_block_past_its_deadline_raises_timeout_error_within_a_tick())


async def _test_a_block_past_its_deadline_raises_timeout_error_within_a_tick() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        await _sleep_within(deadlines, 0.05, 10)
    assert 0.05 <= loop.time() - began < 0.05 + 10 * TICK  # late by a tick or so, never early
    assert deadlines.count == 0 and not deadlines.slots


def test_a_block_in_time_is_untouched_and_the_timer_stops_when_nothing_is_open() -> None:
    asyncio.run(_test_a_block_in_time_is_untouched_and_the_timer_stops_when_nothing_is_open())


async def _test_a_block_in_time_is_untouched_and_the_timer_stops_when_nothing_is_open() -> None:
    deadlines = Deadlines()
    assert await _sleep_within(deadlines, 5, 0) == "done"
    assert deadlines.count == 0 and not deadlines.slots
    await asyncio.sleep(3 * TICK)  # the tick armed by the block ran, found nothing open and did not re-arm
    assert deadlines._due is None


def test_a_cancel_from_outside_stays_a_cancel() -> None:
    asyncio.run(_test_a_cancel_from_outside_stays_a_cancel())


async def _test_a_cancel_from_outside_stays_a_cancel() -> None:
    """A client that leaves cancels the request: that must not turn into a provider timeout."""
    deadlines = Deadlines()
    task = asyncio.create_task(_sleep_within(deadlines, 0.05, 10))
    await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.count == 0 and not deadlines.slots
    await asyncio.sleep(0.1)  # past the deadline: nothing is cancelled twice, nothing is left open
    assert deadlines.count == 0 and not deadlines.slots and task.cancelled()


def test_concurrent_deadlines_each_fire_for_their_own_task_only() -> None:
    asyncio.run(_test_concurrent_deadlines_each_fire_for_their_own_task_only())


async def _test_concurrent_deadlines_each_fire_for_their_own_task_only() -> None:
    deadlines = Deadlines()
    short = asyncio.create_task(_sleep_within(deadlines, 0.02, 10))
    long = asyncio.create_task(_sleep_within(deadlines, 5, 0.1))
    results = await asyncio.gather(short, long, return_exceptions=True)
    assert isinstance(results[0], TimeoutError)
    assert results[1] == "done"


def test_many_open_deadlines_fire_in_order_and_none_early() -> None:
    asyncio.run(_many())


async def _many() -> None:
    """Deadlines spread over 0-0.2 s, filed by tick: each fires at or after its due time, none is lost."""
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    fired: dict[int, float] = {}

    async def one(i: int, limit: float) -> None:
        began = loop.time()
        try:
            async with deadlines.within(limit):
                await asyncio.sleep(10)
        except TimeoutError:
            fired[i] = loop.time() - began - limit

    limits = [(i % 20) / 100 for i in range(200)]
    await asyncio.gather(*(one(i, limit) for i, limit in enumerate(limits)))
    assert len(fired) == 200 and min(fired.values()) >= 0
    assert deadlines.count == 0 and not deadlines.slots
