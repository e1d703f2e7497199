"""Single-flight: concurrent identical requests make one upstream call, in one process and across many.

``await flights.run(key, fn, lookup=..., wait=...)``:

- In-process, the first caller for `key` is the leader and runs `fn` in its own task; later callers
  (followers) await the leader's outcome and get the same result object (treat it as read-only).
- Across processes, the leader first takes ``backend.try_lock(key, lock_ttl)``. With the lock it calls
  `lookup` once more (another process may have stored the answer a moment ago), then `fn`, then
  unlocks. Without the lock it polls `lookup` (and retries the lock, so that when the holder
  finishes without storing anything exactly one waiter takes over) every `poll_interval` seconds for
  at most `wait` seconds, then calls `fn` on its own. `fn` must store its result where `lookup`
  finds it before returning, or waiting processes will not see it.
- If the leader raises, its own caller gets the exception; if followers are waiting and the retry
  budget (`retries`, 1 by default) allows, exactly one follower becomes the new leader and calls its
  own `fn`, the others wait on that one; once the budget is spent the followers get the exception.
- If the leader is cancelled (its client went away), one follower takes over without spending the
  retry budget. A follower's own cancellation never affects the leader.
- A hand-over names its successor flight, and the followers follow that link rather than looking the
  key up again: a retry that fails before the other followers have woken up (a cooled-down deployment
  fails at once) still answers all of them with its error, instead of each starting a fresh flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from proxy.cache.backend import CacheBackend

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _HandOver(Exception):
    """The leader is gone; the first follower to wake leads `successor`, the others wait on it."""

    def __init__(self, successor: _Flight) -> None:
        super().__init__("single-flight leader handed over")
        self.successor = successor


def _new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class _Flight:
    retries_left: int
    claimed: bool = True
    waiters: int = 0
    future: asyncio.Future[Any] = field(default_factory=_new_future)


class SingleFlight:
    """Deduplicates concurrent work per key, in-process and (through the backend lock) across processes."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        lock_ttl: float = 30.0,
        poll_interval: float = 0.05,
        retries: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._backend = backend
        self._lock_ttl = lock_ttl
        self._poll = poll_interval
        self._retries = retries
        self._clock = clock
        self._sleep = sleep
        self._flights: dict[str, _Flight] = {}

    def in_flight(self, key: str) -> bool:
        """True while a leader in this process is working on `key`."""
        return key in self._flights

    async def run(
        self,
        key: str,
        fn: Callable[[], Awaitable[T]],
        *,
        lookup: Callable[[], Awaitable[T | None]],
        wait: float,
        lock_ttl: float | None = None,
    ) -> T:
        """Return `fn()`'s result, sharing one call among all concurrent callers of `key`."""
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight(retries_left=self._retries)
            return await self._lead(key, flight, fn, lookup, wait, lock_ttl)
        while True:
            if not flight.claimed:
                flight.claimed = True
                return await self._lead(key, flight, fn, lookup, wait, lock_ttl)
            try:
                return cast(T, await self._follow(flight))
            except _HandOver as handover:
                flight = handover.successor  # even if it already ended: its outcome is ours

    @staticmethod
    async def _follow(flight: _Flight) -> Any:
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.future)
        finally:
            flight.waiters -= 1

    async def _lead(
        self,
        key: str,
        flight: _Flight,
        fn: Callable[[], Awaitable[T]],
        lookup: Callable[[], Awaitable[T | None]],
        wait: float,
        lock_ttl: float | None,
    ) -> T:
        try:
            result = await self._across_processes(key, fn, lookup, wait, lock_ttl or self._lock_ttl)
        except Exception as exc:
            if flight.retries_left > 0 and flight.waiters > 0:
                self._hand_over(key, flight, flight.retries_left - 1)
            else:
                self._fail(key, flight, exc)
            raise
        except BaseException:  # cancelled: the work is not done, let a follower do it
            self._hand_over(key, flight, flight.retries_left)
            raise
        self._release(key, flight)
        flight.future.set_result(result)
        return result

    async def _across_processes(
        self,
        key: str,
        fn: Callable[[], Awaitable[T]],
        lookup: Callable[[], Awaitable[T | None]],
        wait: float,
        lock_ttl: float,
    ) -> T:
        deadline = self._clock() + wait
        while True:
            if await self._backend.try_lock(key, lock_ttl):
                try:
                    found = await lookup()
                    return found if found is not None else await fn()
                finally:
                    await self._backend.unlock(key)
            found = await lookup()
            if found is not None:
                return found
            remaining = deadline - self._clock()
            if remaining <= 0:
                return await fn()  # the bounded wait is over: proceed alone
            await self._sleep(min(self._poll, remaining))

    def _hand_over(self, key: str, flight: _Flight, retries_left: int) -> None:
        successor = _Flight(retries_left=retries_left, claimed=False)
        if flight.waiters == 0:
            self._release(key, flight)  # nobody to take over: let the next caller start afresh
        elif self._flights.get(key) is flight:
            self._flights[key] = successor  # new callers join the successor too
        flight.future.set_exception(_HandOver(successor))
        flight.future.exception()  # mark retrieved: waiters may all have gone meanwhile

    def _fail(self, key: str, flight: _Flight, exc: Exception) -> None:
        self._release(key, flight)
        flight.future.set_exception(exc)
        flight.future.exception()  # mark retrieved: there may be no follower to see it

    def _release(self, key: str, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
