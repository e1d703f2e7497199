"""Attempt deadlines without a timer each: one shared tick per event loop cancels what has run out.

`asyncio.timeout` schedules a timer and cancels it again on every use (a Timeout object, a timer
handle, about 5 µs): once per upstream call. `Deadlines.within(seconds)` only files the running task
under the tick its deadline falls in; a tick every `TICK` seconds, armed while some deadline is open
and not at all when none is, cancels the tasks filed under the ticks that have passed. Filing and
unfiling are dictionary operations, and a tick looks only at its own slots, however many calls are
open. A deadline fires up to `TICK` late, which no timeout measured in seconds notices. The contract is
`asyncio.timeout`'s: the block's CancelledError becomes TimeoutError when, and only when, this
deadline caused it (a client leaving still cancels).
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

__all__ = ["Deadlines", "TICK"]

TICK = 0.01  # seconds between two looks at the open deadlines


class Deadlines:
    """The open deadlines of one event loop's tasks, by tick, and the one timer that enforces them."""

    def __init__(self) -> None:
        self.slots: dict[int, dict[_Within, None]] = {}  # tick number -> the deadlines due by then
        self.count = 0  # open deadlines
        self._done = 0  # the last tick number handled
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: asyncio.TimerHandle | None = None

    def within(self, seconds: float) -> _Within:
        """`async with deadlines.within(s):` raises TimeoutError if the block runs past `s` seconds."""
        return _Within(self, seconds)

    def _add(self, entry: _Within, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # another event loop (tests run several): what the old one held is gone
            self.slots.clear()
            self.count = 0
            self._loop, self._due = loop, None
        now = loop.time()
        if self._due is None:
            self._done = math.floor(now / TICK)
            self._due = loop.call_later(TICK, self._tick)
        entry.slot = max(math.ceil((now + seconds) / TICK), self._done + 1)
        self.slots.setdefault(entry.slot, {})[entry] = None
        self.count += 1

    def _remove(self, entry: _Within) -> None:
        slot = self.slots.get(entry.slot)
        if slot is not None and slot.pop(entry, 0) is None:
            self.count -= 1
            if not slot:
                del self.slots[entry.slot]

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = math.floor(loop.time() / TICK)
        for number in range(self._done + 1, now + 1):
            for entry in self.slots.pop(number, ()):
                self.count -= 1
                entry.expire()
        self._done = max(self._done, now)
        self._due = loop.call_later(TICK, self._tick) if self.count else None


class _Within:
    __slots__ = ("_cancelling", "_deadlines", "_seconds", "_task", "expired", "slot")

    def __init__(self, deadlines: Deadlines, seconds: float) -> None:
        self._deadlines, self._seconds = deadlines, seconds
        self.expired = False
        self.slot = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task, self._cancelling = task, task.cancelling()
        self._deadlines._add(self, self._seconds)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.expired:
            self._deadlines._remove(self)
        elif self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc  # ours, and nobody else asked to cancel meanwhile

    def expire(self) -> None:
        """Past due: cancel the block's task (the tick's call)."""
        self.expired = True
        self._task.cancel()
