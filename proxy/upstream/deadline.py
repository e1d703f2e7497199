"""Attempt deadlines without a timer each: one shared tick per event loop cancels what has run out.

`asyncio.timeout` schedules a timer and cancels it again on every use (a Timeout object, a timer
handle, about 5 µs): once per upstream call. `Deadlines.within(seconds)` only records the running task
and its due time; a tick every `TICK` seconds, armed while some deadline is open and not at all when
none is, cancels the tasks past theirs. A deadline fires up to `TICK` late, which no timeout measured
in seconds notices. The contract is `asyncio.timeout`'s: the block's CancelledError becomes
TimeoutError when, and only when, this deadline caused it (a client leaving still cancels).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["TICK", "Deadlines"]

TICK = 0.01  # seconds between two looks at the open deadlines


class Deadlines:
    """The open deadlines of one event loop's tasks, and the one timer that enforces them."""

    def __init__(self) -> None:
        self.open: dict[_Within, None] = {}  # an ordered set
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: asyncio.TimerHandle | None = None

    def within(self, seconds: float) -> _Within:
        """`async with deadlines.within(s):` raises TimeoutError if the block runs past `s` seconds."""
        return _Within(self, seconds)

    def _add(self, entry: _Within) -> float:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # another event loop (tests run several): what the old one held is gone
            self.open.clear()
            self._loop, self._due = loop, None
        self.open[entry] = None
        if self._due is None:
            self._due = loop.call_later(TICK, self._tick)
        return loop.time()

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for entry in [e for e in self.open if e.at <= now]:
            del self.open[entry]
            entry.expire()
        self._due = loop.call_later(TICK, self._tick) if self.open else None


class _Within:
    __slots__ = ("_cancelling", "_deadlines", "_seconds", "_task", "at", "expired")

    def __init__(self, deadlines: Deadlines, seconds: float) -> None:
        self._deadlines, self._seconds = deadlines, seconds
        self.expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task, self._cancelling = task, task.cancelling()
        self.at = self._deadlines._add(self) + self._seconds

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._deadlines.open.pop(self, None)
        if self.expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc  # ours, and nobody else asked to cancel meanwhile

    def expire(self) -> None:
        """Past due: cancel the block's task (the tick's call)."""
        self.expired = True
        self._task.cancel()
