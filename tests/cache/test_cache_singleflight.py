"""Single-flight: one call for many identical concurrent requests, one retry when the leader fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from proxy.cache import NoCache, SingleFlight
from proxy.cache.disk import DiskBackend
from tests.helpers import apoll


class Upstream:
    """Counts calls; each call may be scripted to fail; answers after a short delay."""

    def __init__(self, *, failures: int = 0, delay: float = 0.05) -> None:
        self.calls = 0
        self.failures = failures
        self.delay = delay

    def for_request(self, index: int) -> Callable[[], Awaitable[str]]:
        async def call() -> str:
            self.calls += 1
            attempt = self.calls
            await asyncio.sleep(self.delay)
            if attempt <= self.failures:
                raise RuntimeError(f"upstream failed on call {attempt}")
            return f"answer from call {attempt} (request {index})"

        return call


async def miss() -> str | None:
    return None


async def run_all(flights: SingleFlight, upstream: Upstream, n: int = 50) -> list[object]:
    return await asyncio.gather(
        *(flights.run("k", upstream.for_request(i), lookup=miss, wait=1) for i in range(n)),
        return_exceptions=True,
    )


@pytest.mark.asyncio
async def test_fifty_concurrent_callers_share_one_call() -> None:
    flights, upstream = SingleFlight(NoCache()), Upstream()
    results = await run_all(flights, upstream)
    assert upstream.calls == 1
    assert results == ["answer from call 1 (request 0)"] * 50
    assert not flights.in_flight("k")
    assert await run_all(flights, upstream, 1) == ["answer from call 2 (request 0)"]  # no stale flight


@pytest.mark.asyncio
async def test_different_keys_do_not_share() -> None:
    flights, upstream = SingleFlight(NoCache()), Upstream()
    results = await asyncio.gather(
        *(flights.run(f"k{i % 2}", upstream.for_request(i), lookup=miss, wait=1) for i in range(10))
    )
    assert upstream.calls == 2 and len(set(results)) == 2


@pytest.mark.asyncio
async def test_leader_failure_makes_exactly_one_follower_retry() -> None:
    flights, upstream = SingleFlight(NoCache()), Upstream(failures=1)
    results = await run_all(flights, upstream)
    assert upstream.calls == 2
    assert isinstance(results[0], RuntimeError)  # the leader's own caller gets its error
    retried_by = [r for r in results[1:] if isinstance(r, str)]
    assert len(retried_by) == 49 and len(set(retried_by)) == 1 and "call 2" in retried_by[0]


@pytest.mark.asyncio
async def test_when_the_retry_fails_too_every_follower_gets_the_error() -> None:
    flights, upstream = SingleFlight(NoCache()), Upstream(failures=10)
    results = await run_all(flights, upstream)
    assert upstream.calls == 2
    assert all(isinstance(r, RuntimeError) for r in results)
    assert {str(r) for r in results[1:]} == {"upstream failed on call 2"}


@pytest.mark.asyncio
async def test_a_lone_failing_caller_is_not_retried() -> None:
    flights, upstream = SingleFlight(NoCache()), Upstream(failures=1)
    with pytest.raises(RuntimeError):
        await flights.run("k", upstream.for_request(0), lookup=miss, wait=1)
    assert upstream.calls == 1 and not flights.in_flight("k")


@pytest.mark.asyncio
async def test_a_cancelled_leader_hands_over_to_one_follower() -> None:
    flights, upstream = SingleFlight(NoCache()), Upstream(delay=0.2)
    tasks = [
        asyncio.create_task(flights.run("k", upstream.for_request(i), lookup=miss, wait=1)) for i in range(10)
    ]
    await apoll(lambda: upstream.calls == 1)  # the leader is at the upstream
    tasks[0].cancel()  # the leader's client went away
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert upstream.calls == 2
    assert len({r for r in results[1:] if isinstance(r, str)}) == 1 and all(
        isinstance(r, str) for r in results[1:]
    )


@pytest.mark.asyncio
async def test_a_cancelled_follower_does_not_disturb_the_leader() -> None:
    flights, upstream = SingleFlight(NoCache()), Upstream(delay=0.1)
    tasks = [
        asyncio.create_task(flights.run("k", upstream.for_request(i), lookup=miss, wait=1)) for i in range(5)
    ]
    await apoll(lambda: upstream.calls == 1)  # the leader is at the upstream, the others follow
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert upstream.calls == 1
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 3] == ["answer from call 1 (request 0)"] * 4


@pytest.mark.asyncio
async def test_fifty_callers_across_two_processes_on_disk_make_one_call(tmp_path: Path) -> None:
    replicas = [DiskBackend(tmp_path / "c", size_limit=2**30) for _ in range(2)]  # two "processes"
    flights = [SingleFlight(backend, poll_interval=0.02) for backend in replicas]
    calls = 0

    async def request(index: int) -> bytes:
        backend = replicas[index % 2]

        async def produce() -> bytes:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)
            await backend.set("answer", b"42", 60)  # fn stores before returning
            return b"42"

        return await flights[index % 2].run("answer", produce, lookup=lambda: backend.get("answer"), wait=5)

    assert await asyncio.gather(*(request(i) for i in range(50))) == [b"42"] * 50
    assert calls == 1
    for backend in replicas:
        await backend.close()


@pytest.mark.asyncio
async def test_a_lock_held_by_a_silent_process_bounds_the_wait(tmp_path: Path) -> None:
    other, mine = DiskBackend(tmp_path / "c", size_limit=2**30), DiskBackend(tmp_path / "c", size_limit=2**30)
    assert await other.try_lock("k", 30)  # a leader elsewhere that never stores anything
    flights, upstream = SingleFlight(mine, poll_interval=0.02), Upstream(delay=0)
    started = time.monotonic()
    result = await flights.run("k", upstream.for_request(0), lookup=lambda: mine.get("k"), wait=0.3)
    waited = time.monotonic() - started
    assert result == "answer from call 1 (request 0)" and upstream.calls == 1
    assert 0.3 <= waited < 3.0
    await other.close()
    await mine.close()


@pytest.mark.asyncio
async def test_a_released_lock_without_an_answer_lets_one_waiter_take_over(tmp_path: Path) -> None:
    other, mine = DiskBackend(tmp_path / "c", size_limit=2**30), DiskBackend(tmp_path / "c", size_limit=2**30)
    assert await other.try_lock("k", 30)
    flights, upstream = SingleFlight(mine, poll_interval=0.02), Upstream(delay=0)

    async def release_soon() -> None:
        await asyncio.sleep(0.1)
        await other.unlock("k")  # the other leader failed: nothing stored

    started = time.monotonic()
    _, result = await asyncio.gather(
        release_soon(), flights.run("k", upstream.for_request(0), lookup=lambda: mine.get("k"), wait=10)
    )
    assert result == "answer from call 1 (request 0)"
    assert time.monotonic() - started < 5.0  # took over when the lock was freed, not after `wait`
    assert await other.try_lock("k", 30)  # and released its own lock afterwards
    await other.close()
    await mine.close()


@pytest.mark.asyncio
async def test_an_answer_stored_before_the_lock_was_won_is_not_recomputed(tmp_path: Path) -> None:
    cache = DiskBackend(tmp_path / "c", size_limit=2**30)
    await cache.set("k", b"stored by another process just now", 60)
    upstream = Upstream()

    async def never() -> bytes:
        await upstream.for_request(0)()
        return b"fresh"

    result = await SingleFlight(cache).run("k", never, lookup=lambda: cache.get("k"), wait=1)
    assert result == b"stored by another process just now" and upstream.calls == 0
    await cache.close()


@pytest.mark.asyncio
async def test_a_broken_backend_does_not_delay_the_leader(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cache.db").write_bytes(b"garbage" * 1000)
    broken = DiskBackend(tmp_path / "c", size_limit=2**30)
    assert broken.open_error is not None
    upstream = Upstream(delay=0)
    started = time.monotonic()
    result = await SingleFlight(broken).run(
        "k", upstream.for_request(0), lookup=lambda: broken.get("k"), wait=5
    )
    assert result.startswith("answer") and time.monotonic() - started < 1.0
    await broken.close()
