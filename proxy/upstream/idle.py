"""One timer per stream instead of one `asyncio.timeout` per chunk.

A streamed answer arrives in dozens of small chunks, most of them already buffered when asked for; an
`asyncio.timeout` around each read (a `Timeout`, a timer scheduled and cancelled, the task's cancel
bookkeeping) was a quarter of a buffered stream's CPU. `IdleWatch` keeps one timer that is re-armed
only when it fires: then it cancels the reading task if the current read has waited `gap` seconds, or
the stream has run past `ends`; otherwise it sleeps until the read's own due time.
"""

from __future__ import annotations

import asyncio

__all__ = ["IdleWatch"]


class IdleWatch:
    """Bounds every `read()` wait by `gap` and the whole stream by the loop time `ends`."""

    def __init__(self, gap: float, ends: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[object] | None = None
        self.gap, self.ends = gap, ends
        self.waiting_since: float | None = None
        self.fired = False
        self.whole = False  # what fired: the whole stream's limit (True) or one gap
        self._handle = self.loop.call_at(min(self.loop.time() + gap, ends), self._check)

    def begin(self) -> bool:
        """A read starts; False when the stream is already past its end (time out at once)."""
        self.task = asyncio.current_task()  # the reader's: a stream may be read on by another task
        now = self.waiting_since = self.loop.time()
        if now >= self.ends:
            self.whole = True
            return False
        return True

    def end(self) -> None:
        """The read returned."""
        self.waiting_since = None

    def timed_out(self) -> bool:
        """After a CancelledError in a read: True when this watch caused it (and nobody else cancelled)."""
        self.waiting_since = None
        return self.fired and self.task is not None and self.task.uncancel() == 0

    def close(self) -> None:
        self._handle.cancel()

    def _check(self) -> None:
        now, since = self.loop.time(), self.waiting_since
        if since is None:  # not reading (the consumer is busy): look again a gap later; `begin` checks `ends`
            self._handle = self.loop.call_at(now + self.gap, self._check)
            return
        due = min(since + self.gap, self.ends)
        if now >= due and self.task is not None:
            self.fired, self.whole = True, due >= self.ends
            self.task.cancel()
            return
        self._handle = self.loop.call_at(due, self._check)
