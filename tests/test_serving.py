"""The served protocol (proxy.serving): one write per response, and a header deadline armed only when
a read ends inside a request's headers. The protocol is fed bytes directly, its transport a recorder."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from proxy.serving import HeaderTimeoutProtocol

BODY = b'{"answer":42}'


class Recorder(asyncio.Transport):
    """What the protocol writes, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def answer(scope: Any, receive: Any, send: Any) -> None:
    """Read the body, then answer at once (a cache hit), or after a pause (`/later`: a late first event)."""
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["path"] == "/later":
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": BODY})


def connect(timeout: float = 10.0) -> tuple[HeaderTimeoutProtocol, Recorder]:
    config = uvicorn.Config(answer, lifespan="off", log_level="warning")
    config.load()
    protocol = HeaderTimeoutProtocol(config=config, server_state=ServerState(), app_state={})
    protocol.header_timeout = timeout
    transport = Recorder()
    protocol.connection_made(transport)
    return protocol, transport


def request(path: str = "/", *, expect: bool = False) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(BODY)}\r\n"
    return (head + ("expect: 100-continue\r\n" if expect else "") + "\r\n").encode()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_an_answer_sent_at_once_is_one_write() -> None:
    async def run() -> list[bytes]:
        protocol, transport = connect()
        protocol.data_received(request() + BODY)
        protocol.data_received(request() + BODY)  # pipelined: answered in order, each in one write
        await settle()
        await settle()
        return transport.writes

    writes = asyncio.run(run())
    assert len(writes) == 2
    for write in writes:
        assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\n" + BODY)


def test_headers_do_not_wait_for_a_late_body() -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        protocol, transport = connect()
        protocol.data_received(request("/later") + BODY)
        await settle()
        before_body = list(transport.writes)
        await asyncio.sleep(0.05)
        return before_body, transport.writes

    before_body, writes = asyncio.run(run())
    assert len(before_body) == 1 and before_body[0].startswith(b"HTTP/1.1 200 OK\r\n")  # sent on their own
    assert b"".join(writes).endswith(b"\r\n\r\n" + BODY) and len(writes) == 2


def test_100_continue_goes_out_before_the_body_is_sent() -> None:
    async def run() -> list[bytes]:
        protocol, transport = connect()
        protocol.data_received(request(expect=True))
        await settle()
        assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]  # not held back
        protocol.data_received(BODY)
        await settle()
        return transport.writes

    writes = asyncio.run(run())
    assert len(writes) == 2 and writes[1].startswith(b"HTTP/1.1 200 OK\r\n")


class CountingLoop:
    """The running loop, counting the timers scheduled for `delay` seconds."""

    def __init__(self, delay: float) -> None:
        self.loop, self.delay, self.timers = asyncio.get_running_loop(), delay, 0

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.timers += delay == self.delay
        return self.loop.call_later(delay, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)


def test_the_header_deadline_is_armed_only_inside_headers() -> None:
    async def run() -> None:
        protocol, transport = connect(timeout=0.05)
        protocol.data_received(request() + BODY)  # the connection's first headers: its timer is done
        await settle()
        assert protocol._header_timer is None
        protocol.loop = loop = CountingLoop(0.05)  # type: ignore[assignment]
        for _ in range(3):
            protocol.data_received(request() + BODY)  # a whole request in one read: no timer at all
            await settle()
        assert loop.timers == 0 and protocol._header_timer is None
        protocol.data_received(b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")  # a read ends mid-headers
        assert protocol._header_timer is not None and loop.timers == 1
        await asyncio.sleep(0.2)
        assert transport.closed  # the trickling client is cut

    asyncio.run(run())


def test_a_held_header_block_goes_out_before_the_connection_closes() -> None:
    async def run() -> list[bytes]:
        protocol, transport = connect()
        protocol.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        protocol.transport.close()
        return transport.writes

    assert asyncio.run(run()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"]
