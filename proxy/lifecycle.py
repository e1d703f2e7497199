"""Each HTTP request runs until it is answered, its client leaves, or the server's drain ends it.

uvicorn does not cancel a request whose client disconnected before the response started, so without
this a non-streamed call (or a stream still waiting for its first token) keeps its upstream call going
to the end (litellm #13774, #37140). Once the request body has been read, a watcher listens for
`http.disconnect` and cancels the request's task at once; the cancellation reaches the transport, which
closes the upstream connection. The watcher (a task) starts once the request has run `WATCH_AFTER`
seconds: most requests (cache hits, fast upstreams) are answered before that and never pay for one.

The body deadline lives here too: a request still waiting for its body `body_timeout` seconds after it
began is cut, and the read raises `RequestTimeout` (408) in the app. Both are the work of one shared
timer (`_Timers`), which runs every `TICK` seconds while some request may need it and not at all when
none does: no request schedules a timer of its own.

On shutdown (`proxy.shutdown.Drain`) requests still open when the grace period is nearly over are
cancelled the same way and then ended properly: an open stream gets one error event (never a silent
cut the SDK would take for a normal end), an unanswered request a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import Overloaded, RequestTimeout
from .shutdown import Drain, install_signal_hook

__all__ = ["RequestLifecycle", "TICK", "WATCH_AFTER"]

WATCH_AFTER = 0.02  # seconds a request runs before its disconnect watcher starts
TICK = 0.01  # the shared timer's period: a client that leaves is noticed within WATCH_AFTER + TICK

_SHUTTING_DOWN = "guardproxy is shutting down; retry the request."


class RequestLifecycle:
    """ASGI middleware: cancel on client disconnect, the body deadline, end open requests on drain, hook
    the signals. `body_timeout` gives the current `server.body_timeout` (read when a body is late)."""

    def __init__(
        self, app: ASGIApp, *, grace: float, delay: float = 0.0, body_timeout: Callable[[], float]
    ) -> None:
        self.app = app
        self.drain = Drain(grace, delay)
        self.timers = _Timers(body_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan(receive), send)
        elif scope["type"] == "http":
            await _Request(self.app, self.drain, self.timers).run(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _lifespan(self, receive: Receive) -> Receive:
        undo: list[object] = []

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                undo.append(install_signal_hook(self.drain, asyncio.get_running_loop()))
            elif message["type"] == "lifespan.shutdown":
                for step in undo:
                    if callable(step):
                        step()
            return message

        return wrapped


class _Timers:
    """One timer for every open request: each tick starts the watcher of the requests that have run
    `WATCH_AFTER` with their body read, and cuts the body reads older than `body_timeout`.

    A request is `open` from its start until it has its watcher or ends; a request registering while no
    tick is due schedules one, and the ticks stop when nothing is open."""

    def __init__(self, body_timeout: Callable[[], float]) -> None:
        self.body_timeout = body_timeout
        self.open: dict[_Request, float] = {}  # request -> when it began (loop time)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: asyncio.TimerHandle | None = None

    def add(self, request: _Request) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # another event loop (tests run several): what the old one held is gone
            self.open.clear()
            self._loop, self._due = loop, None
        self.open[request] = loop.time()
        if self._due is None:
            self._due = loop.call_later(TICK, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        timeout: float | None = None
        for request, began in list(self.open.items()):
            if request.body_read:
                if now - began >= WATCH_AFTER:
                    del self.open[request]
                    request.watch(loop)
            elif request.reading:
                if timeout is None:
                    timeout = self.body_timeout()
                if now - began >= timeout:
                    del self.open[request]
                    request.cut_body(timeout)
        self._due = loop.call_later(TICK, self._tick) if self.open else None


class _Request:
    """The state of one request: body read, client gone, response started / finished, why it ended."""

    def __init__(self, app: ASGIApp, drain: Drain, timers: _Timers) -> None:
        self.app = app
        self.drain = drain
        self.timers = timers
        self.task: asyncio.Task[None] | None = None
        self.receive: Receive | None = None
        self.send: Send | None = None
        self.body_read = False
        self.reading = False  # awaiting a body message right now
        self.late_after = 0.0  # the body deadline that cut this request's body, when one did
        self.client_gone = asyncio.Event()
        self.started = False
        self.start_headers: list[tuple[bytes, bytes]] = []
        self.finished = False
        self.reason: str | None = None
        self.watcher: asyncio.Task[None] | None = None

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = self.task = asyncio.current_task()
        assert task is not None
        self.receive, self.send = receive, send
        untrack = self.drain.track(lambda: self._cancel("shutdown"))
        self.timers.add(self)
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            if self.reason is None or task.uncancel() > 0:
                raise  # cancelled from outside (the server) too: not ours to absorb
            if self.reason == "shutdown":
                await self._close(send)
        finally:
            untrack()
            self.timers.open.pop(self, None)
            if self.watcher is not None:
                self.watcher.cancel()

    async def _receive(self) -> Message:
        assert self.receive is not None and self.task is not None
        if self.body_read:
            await self.client_gone.wait()  # the watcher owns `receive` now
            return {"type": "http.disconnect"}
        self.reading = True
        try:
            message = await self.receive()
        except asyncio.CancelledError:
            if self.reason != "body_timeout" or self.task.uncancel() > 0:
                raise
            self.reason = None  # the request goes on: it answers 408
            raise RequestTimeout(f"The request body did not arrive within {self.late_after:g} s.") from None
        finally:
            self.reading = False
        if message["type"] == "http.disconnect":
            self.client_gone.set()
            self.body_read = True
        elif not message.get("more_body"):
            self.body_read = True
        return message

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.start_headers = message.get("headers") or []
            if self.drain.draining:  # no idle keep-alive connection left for the server to cut
                message["headers"] = [*self.start_headers, (b"connection", b"close")]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            self.finished = True
        assert self.send is not None
        await self.send(message)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start listening for the client's disconnect (the timers' call)."""
        if not self.finished:
            self.watcher = loop.create_task(self._watch_client())

    def cut_body(self, timeout: float) -> None:
        """The body is late: interrupt its read, which raises `RequestTimeout` (the timers' call)."""
        self.late_after = timeout
        self._cancel("body_timeout")

    def _cancel(self, reason: str) -> None:
        if not self.finished and self.reason is None and self.task is not None:
            self.reason = reason
            self.task.cancel()

    async def _watch_client(self) -> None:
        assert self.receive is not None
        while not self.client_gone.is_set():
            if (await self.receive())["type"] == "http.disconnect":
                self.client_gone.set()
        self._cancel("disconnect")

    async def _close(self, send: Send) -> None:
        """End a request the drain cut short: an error event on a stream, else a 503 if nothing was sent."""
        error = Overloaded(_SHUTTING_DOWN, retry_after=1, code="shutting_down")
        with contextlib.suppress(Exception):
            if not self.started:
                headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
                headers += [(k.encode(), v.encode()) for k, v in error.headers().items()]
                await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
                await send({"type": "http.response.body", "body": orjson.dumps(error.body())})
            elif self._event_stream() and not self.finished:
                event = b"data: " + orjson.dumps(error.body()) + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": False})

    def _event_stream(self) -> bool:
        for name, value in self.start_headers:
            if name == b"content-type":
                return value.startswith(b"text/event-stream")
        return False
