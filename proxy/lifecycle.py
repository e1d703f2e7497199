"""Each HTTP request runs until it is answered, its client leaves, or the server's drain ends it.

uvicorn does not cancel a request whose client disconnected before the response started, so without
this a non-streamed call (or a stream still waiting for its first token) keeps its upstream call going
to the end (litellm #13774, #37140). Once the request body has been read, a watcher listens for
`http.disconnect` and cancels the request's task at once; the cancellation reaches the transport, which
closes the upstream connection. The watcher (a task) starts `WATCH_AFTER` seconds after the body was read:
most requests (cache hits, fast upstreams) are answered before that and never pay for one.
On shutdown (`proxy.shutdown.Drain`) requests still open when the grace period is nearly over are
cancelled the same way and then ended properly: an open stream gets one error event (never a silent
cut the SDK would take for a normal end), an unanswered request a 503.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import Overloaded
from .shutdown import Drain, install_signal_hook

__all__ = ["RequestLifecycle", "WATCH_AFTER"]

WATCH_AFTER = 0.02  # seconds; a client that leaves is noticed at most this much later

_SHUTTING_DOWN = "guardproxy is shutting down; retry the request."


class RequestLifecycle:
    """ASGI middleware: cancel on client disconnect, end open requests on drain, hook the signals."""

    def __init__(self, app: ASGIApp, *, grace: float, delay: float = 0.0) -> None:
        self.app = app
        self.drain = Drain(grace, delay)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan(receive), send)
        elif scope["type"] == "http":
            await _Request(self.app, self.drain).run(scope, receive, send)
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


class _Request:
    """The state of one request: body read, client gone, response started / finished, why it ended."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain
        self.body_read = False
        self.client_gone = asyncio.Event()
        self.started = False
        self.event_stream = False
        self.finished = False
        self.reason: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.watcher: asyncio.Task[None] | None = None

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        untrack = self.drain.track(lambda: self._cancel(task, "shutdown"))
        try:
            await self.app(scope, self._receive(receive, task), self._send(send))
        except asyncio.CancelledError:
            if self.reason is None or task.uncancel() > 0:
                raise  # cancelled from outside (the server) too: not ours to absorb
            if self.reason == "shutdown":
                await self._close(send)
        finally:
            untrack()
            if self.timer is not None:
                self.timer.cancel()
            if self.watcher is not None:
                self.watcher.cancel()

    def _receive(self, receive: Receive, task: asyncio.Task[object]) -> Receive:
        async def wrapped() -> Message:
            if not self.body_read:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.client_gone.set()
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    self.body_read = True
                    self._watch_later(receive, task)
                return message
            await self.client_gone.wait()  # the watcher owns `receive` now
            return {"type": "http.disconnect"}

        return wrapped

    def _watch_later(self, receive: Receive, task: asyncio.Task[object]) -> None:
        def start() -> None:
            self.watcher = asyncio.get_running_loop().create_task(self._watch_client(receive, task))

        self.timer = asyncio.get_running_loop().call_later(WATCH_AFTER, start)

    def _send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.started = True
                headers = dict(message.get("headers") or ())
                self.event_stream = headers.get(b"content-type", b"").startswith(b"text/event-stream")
                if self.drain.draining:  # no idle keep-alive connection left for the server to cut
                    message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                self.finished = True
            await send(message)

        return wrapped

    def _cancel(self, task: asyncio.Task[object], reason: str) -> None:
        if not self.finished and self.reason is None:
            self.reason = reason
            task.cancel()

    async def _watch_client(self, receive: Receive, task: asyncio.Task[object]) -> None:
        while not self.client_gone.is_set():
            if (await receive())["type"] == "http.disconnect":
                self.client_gone.set()
        self._cancel(task, "disconnect")

    async def _close(self, send: Send) -> None:
        """End a request the drain cut short: an error event on a stream, else a 503 if nothing was sent."""
        error = Overloaded(_SHUTTING_DOWN, retry_after=1, code="shutting_down")
        with contextlib.suppress(Exception):
            if not self.started:
                headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
                headers += [(k.encode(), v.encode()) for k, v in error.headers().items()]
                await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
                await send({"type": "http.response.body", "body": orjson.dumps(error.body())})
            elif self.event_stream and not self.finished:
                event = b"data: " + orjson.dumps(error.body()) + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": False})
