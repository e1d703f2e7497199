"""A hostile OpenAI-wire upstream on loopback: the deployment's model name picks the attack."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import zlib
from typing import Any

from aiohttp import web

from tests.servers import free_port

MiB = 1024 * 1024


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-ok",
        "object": "chat.completion",
        "created": 1,
        "model": "ok",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    chunk = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def gzip_bomb(megabytes: int = 2) -> bytes:
    """About `megabytes` MB of gzip that inflates ~1000x (zeros), with no end: it never finishes inflating."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    head = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)  # identical for every later MiB
    return head + block * (megabytes * MiB // len(block))


class Attacker:
    """An aiohttp app in a thread; counts the requests each model name received."""

    def __init__(self, drip_every: float = 0.5) -> None:
        self.port = free_port()
        self.calls: dict[str, int] = {}
        self.drip_every = drip_every
        self.bomb = gzip_bomb()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Attacker:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:  # handlers still dripping or idling are cut, not awaited
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()  # its self-pipe sockets would otherwise leak (ResourceWarning at GC)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model, stream = body["model"], bool(body.get("stream"))
        self.calls[model] = self.calls.get(model, 0) + 1
        handler = getattr(self, "_" + model.replace("-", "_"))
        result: web.StreamResponse = await handler(request, stream)
        return result

    async def _ok(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if not stream:
            return web.json_response(_completion("fallback answer"))
        resp = await self._sse(request)
        for part in ("fallback ", "answer"):
            await resp.write(_chunk(part))
        await resp.write(_chunk(finish="stop") + b"data: [DONE]\n\n")
        return resp

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        return resp

    async def _huge(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """A 1 GB JSON body (chunked): a completion whose content never ends."""
        resp = web.StreamResponse(headers={"content-type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"content":"')
        block = b"a" * (64 * 1024)
        for _ in range(1024 * MiB // len(block)):
            await resp.write(block)
        return resp

    async def _sse_endless(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """An event stream that never ends, sent whatever the request asked for."""
        resp = await self._sse(request)
        block = _chunk("b" * 32 * 1024)
        while True:
            await resp.write(block)

    async def _bomb(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """2 MB of gzip that inflates to ~2 GB, labelled as a JSON answer (or an event stream)."""
        kind = "text/event-stream" if stream else "application/json"
        headers = {"content-type": kind, "content-encoding": "gzip"}
        return web.Response(body=self.bomb, headers=headers)

    async def _long_line(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """One SSE line that never ends."""
        resp = await self._sse(request)
        await resp.write(b'data: {"choices":[{"index":0,"delta":{"content":"')
        block = b"c" * (64 * 1024)
        while True:
            await resp.write(block)

    async def _drip(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """One byte (non-stream) or one small chunk (stream) every `drip_every` seconds, forever."""
        if stream:
            resp = await self._sse(request)
            while True:
                await resp.write(_chunk("."))
                await asyncio.sleep(self.drip_every)
        resp = web.StreamResponse(headers={"content-type": "application/json"})
        await resp.prepare(request)
        for byte in json.dumps(_completion("." * 1000)).encode():
            await resp.write(bytes([byte]))
            await asyncio.sleep(self.drip_every)
        return resp

    async def _idle(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """A stream that sends its first words, then nothing (the connection stays open)."""
        resp = await self._sse(request)
        await resp.write(_chunk("first words "))
        await asyncio.sleep(3600)
        return resp

    async def _slow_stream(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """A healthy stream that simply goes on: a chunk every `drip_every` seconds, forever."""
        return await self._drip(request, True)


def wait_for(predicate: Any, within: float) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False
