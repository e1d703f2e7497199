"""The request lifecycle's shared timer (proxy.lifecycle): the body deadline, the disconnect watcher,
and no timer at all for requests that need neither. The full app's 408 over a socket is in
tests/test_hostile_input.py, disconnects over HTTP in tests/faults/test_client_faults.py."""

from __future__ import annotations

import asyncio
from typing import Any

from proxy.errors import RequestTimeout
from proxy.lifecycle import WATCH_AFTER, RequestLifecycle

SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}


class Client:
    """The server side of one request: a body (or nothing, for a client that never sends it), then a
    disconnect whenever `leave` is set; every message the app sends."""

    def __init__(self, body: bytes | None = b"{}") -> None:
        self.body = body
        self.leave = asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        self.reads = 0

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        if self.reads == 1 and self.body is not None:
            return {"type": "http.request", "body": self.body, "more_body": False}
        if self.body is None and self.reads == 1:
            await asyncio.sleep(3600)  # the body never comes
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def respond(send: Any, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def lifecycle(app: Any, body_timeout: float = 30.0) -> RequestLifecycle:
    return RequestLifecycle(app, grace=5, body_timeout=lambda: body_timeout)


def test_a_body_that_never_comes_is_cut_with_request_timeout() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await receive()
        except RequestTimeout as exc:  # raised by the read itself: the endpoint answers its 408
            seen.append(exc.message)
            await respond(send, exc.status_code)

    async def run() -> Client:
        client = Client(body=None)
        await lifecycle(app, body_timeout=0.05)(dict(SCOPE), client.receive, client.send)
        return client

    client = asyncio.run(run())
    assert seen == ["The request body did not arrive within 0.05 s."]
    assert client.sent[0]["status"] == 408


def test_the_body_deadline_spares_a_request_that_is_not_reading() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(0.2)  # a slow answer, long past the body deadline: its body was read
        await respond(send)

    async def run() -> Client:
        client = Client()
        await lifecycle(app, body_timeout=0.05)(dict(SCOPE), client.receive, client.send)
        return client

    assert asyncio.run(run()).sent[0]["status"] == 200


def test_a_client_that_leaves_cancels_its_request() -> None:
    cancelled: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            await asyncio.sleep(3600)  # an upstream call that never ends
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def run() -> Client:
        client = Client()
        asyncio.get_running_loop().call_later(WATCH_AFTER * 3, client.leave.set)
        await asyncio.wait_for(lifecycle(app)(dict(SCOPE), client.receive, client.send), 10)
        return client

    client = asyncio.run(run())
    assert cancelled == [True] and client.sent == []


def test_fast_answers_leave_no_timer_and_no_watcher() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await respond(send)

    async def run() -> tuple[RequestLifecycle, list[Client], int]:
        middleware = lifecycle(app)
        clients = [Client() for _ in range(50)]
        tasks_before = len(asyncio.all_tasks())
        await asyncio.gather(*(middleware(dict(SCOPE), c.receive, c.send) for c in clients))
        await asyncio.sleep(WATCH_AFTER * 3)  # the shared timer ticks, finds nothing open, and stops
        return middleware, clients, len(asyncio.all_tasks()) - tasks_before

    middleware, clients, extra_tasks = asyncio.run(run())
    assert all(c.sent[0]["status"] == 200 for c in clients)
    assert all(c.reads == 1 for c in clients)  # nobody listened for a disconnect: no watcher ran
    assert extra_tasks == 0
    assert middleware.timers.open == {} and middleware.timers._due is None
