"""A pooled upstream connection the provider closes just as we reuse it (its keep-alive timeout racing
ours) is sent again once on another connection: not an attempt, not a failure of the provider.

The upstream is a raw HTTP/1.1 server on loopback that answers the first request of each connection and
closes (FIN, or RST) the connection when a second request arrives on it, without answering: exactly what
a reused connection meets when uvicorn's 5 s keep-alive timeout fires at that moment. guardproxy runs
with `retry.attempts: 1`, so before the fix every reused connection was a 502 and a cooldown failure.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ServerThread

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _sse() -> bytes:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "fi"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "ne"}, "finish_reason": "stop"}]},
    ]
    chunks = [{"id": "c", "object": "chat.completion.chunk", **c} for c in chunks]
    events = [b"data: " + json.dumps(c).encode() for c in chunks]
    return b"\n\n".join([*events, b"data: [DONE]", b""])


class ClosingUpstream:
    """Answers `answered` requests per connection, then closes the connection on the next one unanswered
    (`rst`: with a reset instead of a FIN). `log`: (connection number, answered?) per request received."""

    def __init__(self, *, answered: int = 1, rst: bool = False) -> None:
        self.answered, self.rst = answered, rst
        self.requests = self.connections = 0
        self.log: list[tuple[int, bool]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> ClosingUpstream:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn, served = self.connections, 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = json.loads(await reader.readexactly(length))
                self.requests += 1
                self.log.append((conn, served < self.answered))
                if served >= self.answered:
                    self._close_unanswered(writer)
                    return
                served += 1
                await asyncio.sleep(0.2)  # slow enough that concurrent requests open a connection each
                writer.write(_answer(body.get("stream", False)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _close_unanswered(self, writer: asyncio.StreamWriter) -> None:
        if self.rst:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()


def _answer(stream: bool) -> bytes:
    if stream:
        body, kind = _sse(), b"text/event-stream"
    else:
        body, kind = json.dumps(COMPLETION).encode(), b"application/json"
    head = b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n" % (kind, len(body))
    return head + body


@pytest.fixture
def proxy_on(
    make_config: Callable[..., Path], start_proxy: Callable[[Path], ServerThread]
) -> Iterator[Callable[[ClosingUpstream], httpx.Client]]:
    clients: list[httpx.Client] = []

    def start(upstream: ClosingUpstream) -> httpx.Client:
        dep = {"model": "openai/m", "api_base": upstream.base, "api_key": "sk-up", "transport": "direct"}
        config = make_config(
            {"m": {"deployments": [{**dep, "timeout": 5}]}},
            cache={"backend": "none"},
            retry={"attempts": 1, "cooldown_failures": 1, "cooldown_seconds": 60, "deadline": 10},
        )
        server = start_proxy(config)
        clients.append(httpx.Client(base_url=server.url, timeout=20))
        return clients[-1]

    yield start
    for client in clients:
        client.close()


def _chat(client: httpx.Client, stream: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return client.post("/v1/chat/completions", json=body)


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
def test_a_reused_connection_closed_unanswered_is_sent_again(
    proxy_on: Callable[[ClosingUpstream], httpx.Client], rst: bool, stream: bool
) -> None:
    with ClosingUpstream(rst=rst) as upstream:
        client = proxy_on(upstream)
        with ThreadPoolExecutor(2) as pool:  # two pooled upstream connections, both answered once
            answers = list(pool.map(lambda _: _chat(client, stream), range(2)))
        answers += [_chat(client, stream) for _ in range(2)]
        assert [r.status_code for r in answers] == [200] * 4, answers[-1].text
        assert all(r.headers["x-guardproxy-attempts"] == "1" for r in answers)
        assert all("fine" in r.text for r in answers)
        # every request that met a connection closed under it was sent again at once, on a connection
        # of its own (not the pool's next idle one), and answered there; with cooldown_failures: 1 a
        # counted failure would have cooled the only deployment
        unanswered = [i for i, (_, answered) in enumerate(upstream.log) if not answered]
        assert len(unanswered) == 2  # the 3rd and 4th request each reused a pooled connection
        for i in unanswered:
            conn, answered = upstream.log[i + 1]
            assert answered and conn == max(c for c, _ in upstream.log[: i + 2])  # a new connection


def test_a_provider_that_closes_every_connection_unanswered_fails_after_one_resend(
    proxy_on: Callable[[ClosingUpstream], httpx.Client],
) -> None:
    with ClosingUpstream(answered=0) as upstream:
        client = proxy_on(upstream)
        first = _chat(client)
        assert first.status_code == 502, first.text
        assert first.json()["error"]["type"] == "upstream_error"
        assert upstream.requests == 2  # the attempt and its one re-send; retry.attempts is 1
        # this failure is the provider's: counted, so the deployment (cooldown_failures: 1) is cooled
        second = _chat(client)
        assert second.json()["error"]["code"] == "deployments_cooling_down", second.text
        assert upstream.requests == 2
