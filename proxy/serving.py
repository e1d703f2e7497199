"""uvicorn's HTTP protocol with a deadline on reading request headers (slowloris), and one write per response.

uvicorn times out idle keep-alive connections but not a client that trickles its headers: the
connection stays open forever and the ASGI app never sees it. This protocol gives every request
`header_timeout` seconds from its first byte (or from the connection's start) to finish its headers,
then closes the connection. The timer is armed only when a read ends with the headers incomplete: a
request whose headers arrive in one read (nearly all of them) never schedules one.

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`,
and its body with the next message: two writes, two system calls, for an answer sent at once. Here
every write of the connection goes through `_Corked`, which holds a header block until the next write
(the body, joined to it) or, at the latest, the end of the event loop's current pass.

Pass it as `uvicorn.run(..., http="proxy.serving:HeaderTimeoutProtocol")`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeaderTimeoutProtocol"]


class _Corked:
    """The connection's transport, with a response's header block held until its body follows.

    Every write of the connection passes here, so the order of the bytes never changes; a held block
    goes out joined to the next write, at the end of the loop's pass (a response whose body comes
    later: a stream), or before the connection closes. Anything else is the transport's own."""

    __slots__ = ("_held", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":  # a final status line (not 100 Continue)
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self.transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)  # what uvicorn rarely asks for (an upgrade's set_protocol)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """httptools protocol that closes a connection whose request headers are not complete in time, and
    writes each response's headers together with its body."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._reading_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _Corked(transport, self.loop)  # type: ignore[assignment]
        self._arm_header_timer()  # from the connection's start to its first request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_headers and self._header_timer is None and not self.transport.is_closing():
            self._arm_header_timer()  # this read ended inside a request's headers

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
