"""Graceful shutdown: SIGTERM/SIGINT start a drain; open requests get until shortly before the grace ends.

The signal first turns the replica not-ready (`/health/ready` answers 503) while it keeps serving, old
and new requests alike, for `server.drain_delay` seconds: a load balancer notices and stops sending.
Only then does uvicorn get the signal: it stops accepting connections and
(`timeout_graceful_shutdown` = `server.shutdown_grace`) cancels whatever still runs when the grace
period is over, which would cut streams without a word. `Drain` stops them a little earlier, so
`proxy.lifecycle` can end those requests properly: an error event on an open stream, a 503 on an
unanswered request. A second signal during the delay is passed on at once.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["Drain", "install_signal_hook"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """One app's shutdown state: `draining` from the signal; at `stop_after` the open requests are ended."""

    def __init__(self, grace: float, delay: float = 0.0) -> None:
        self.grace = grace
        self.delay = delay  # not-ready but serving, before the server itself starts shutting down
        # leave the server time to write the closing events before it cancels what is left
        self.stop_after = max(0.0, grace - min(1.0, grace * 0.2))
        self.draining = False
        self.stopped = False
        self._open: set[Callable[[], None]] = set()

    def track(self, stop: Callable[[], None]) -> Callable[[], None]:
        """Register an open request's `stop`; returns the call that unregisters it."""
        self._open.add(stop)
        return lambda: self._open.discard(stop)

    def begin(self) -> None:
        """Start draining (idempotent); the requests still open `stop_after` seconds later are stopped."""
        if self.draining:
            return
        self.draining = True
        asyncio.get_running_loop().call_later(self.delay + self.stop_after, self._stop)

    def _stop(self) -> None:
        self.stopped = True
        for stop in list(self._open):
            stop()


def install_signal_hook(drain: Drain, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Chain SIGTERM/SIGINT to `drain.begin` (then to the server's own handler); returns the undo.

    Only the main thread may set signal handlers; elsewhere (an app served from a test thread) this
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in _SIGNALS}

    def pass_on(sig: int, frame: FrameType | None) -> None:
        before = previous.get(sig)
        if callable(before):
            before(sig, frame)
        elif before == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    def handler(sig: int, frame: FrameType | None) -> None:
        if drain.draining or drain.delay <= 0:  # a second signal, or no delay: the server stops now
            loop.call_soon_threadsafe(drain.begin)
            pass_on(sig, frame)
            return
        loop.call_soon_threadsafe(drain.begin)
        loop.call_soon_threadsafe(loop.call_later, drain.delay, pass_on, sig, None)

    for sig in _SIGNALS:
        signal.signal(sig, handler)

    def undo() -> None:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, before)

    return undo
