"""A bounded OpenAI SDK client for litellm's OpenAI-wire providers (imported only with litellm).

litellm reads OpenAI-wire answers through the openai SDK over httpx, which buffers a whole non-stream
body and inflates gzip without a bound before litellm returns. Handing litellm an SDK client whose
httpx transport reads through `BodyLimit` stops a body at `max_bytes` (decompressed), and a stream's
line at `max_line` bytes, while it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx  # litellm's HTTP library: the openai SDK takes its clients as well as httpx2's
import orjson

from .bounded import ACCEPT_ENCODING, MAX_SSE_LINE, BodyLimit, too_large

__all__ = ["BoundedTransport"]


class _BoundedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, body: BodyLimit, line_limit: int | None) -> None:
        self._inner, self._body, self._line_limit = inner, body, line_limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        run = 0  # bytes since the last line ending
        async for raw in self._inner:
            for piece in self._body.feed(raw):
                if self._line_limit is not None:
                    # every line the piece ends counts, not only its trailing part: a whole long line
                    # may arrive in one piece
                    lines = piece.split(b"\n")
                    longest = max([run + len(lines[0]), *(len(line) for line in lines[1:])])
                    run = longest if len(lines) == 1 else len(lines[-1])
                    if longest > self._line_limit:
                        raise too_large(self._line_limit, "SSE line was longer than the line limit")
                yield piece

    async def aclose(self) -> None:
        await self._inner.aclose()


def _streams(request: httpx.Request) -> bool:
    """Whether the request asked for a stream (its answer is then counted chunk by chunk upstream)."""
    try:
        body = orjson.loads(request.content)
    except (orjson.JSONDecodeError, httpx.RequestNotRead):
        return False
    return isinstance(body, dict) and body.get("stream") is True


class BoundedTransport(httpx.AsyncBaseTransport):
    """Reads every answer within `max_bytes` decompressed (streams: each line within `max_line`)."""

    def __init__(
        self,
        max_bytes: int,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        max_line: int = MAX_SSE_LINE,
    ) -> None:
        self._max = max_bytes
        self._max_line = max_line
        self._inner = inner or _litellm_transport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["accept-encoding"] = ACCEPT_ENCODING
        response = await self._inner.handle_async_request(request)
        encoding = response.headers.get("content-encoding")
        streaming = _streams(request)
        length = response.headers.get("content-length", "")
        if not streaming and not encoding and length.isdigit() and int(length) > self._max:
            await response.aclose()
            raise too_large(self._max)
        try:
            body = BodyLimit(None if streaming else self._max, encoding)
        except BaseException:
            await response.aclose()
            raise
        dropped = (b"content-encoding", b"content-length") if body.inflating else ()  # we inflated it
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in dropped]
        assert isinstance(response.stream, httpx.AsyncByteStream)
        stream = _BoundedStream(response.stream, body, self._max_line if streaming else None)
        return httpx.Response(
            response.status_code, headers=headers, stream=stream, extensions=response.extensions
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _litellm_transport() -> httpx.AsyncBaseTransport:
    """The transport litellm builds for its own SDK clients: aiohttp by default (undecoded bodies, which
    `BodyLimit` inflates), httpx when `litellm.disable_aiohttp_transport` is set. An httpx2 transport of
    our own (httpcore over anyio) cost 0.1-0.3 ms more CPU per call in process, up to 0.9 ms under load."""
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    transport = AsyncHTTPHandler.create_async_transport()
    return transport if transport is not None else httpx.AsyncHTTPTransport()
