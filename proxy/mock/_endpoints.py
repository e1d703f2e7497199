"""Raw ASGI endpoints of the mock server: they need byte-level control (stalls, cuts, disconnects)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.mock import render, schema_gen
from proxy.mock.behaviours import MockReply, embed, embedding_texts, plan_reply
from proxy.mock.options import BEHAVIOURS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = b"application/json"
_SSE = b"text/event-stream; charset=utf-8"
_SCHEMA_MEMO_SIZE = 512


@dataclass
class MockState:
    """Per-app state: the configured labels, call and disconnect counters, generated-schema memo."""

    entries: Mapping[str, tuple[str, Mapping[str, Any]]]
    calls: Counter[str] = field(default_factory=Counter)
    disconnects: Counter[str] = field(default_factory=Counter)
    schema_memo: dict[tuple[bytes, int], Any] = field(default_factory=dict)
    id_prefix: str = field(default_factory=lambda: "chatcmpl-mock-" + os.urandom(6).hex())
    ids: Iterator[int] = field(default_factory=itertools.count)
    last: dict[str, Any] = field(default_factory=dict)  # path -> the last body it received (GET /mock/last)

    def lookup(self, name: str) -> tuple[str, Mapping[str, Any]] | None:
        """(behaviour, options) for a label or a plain behaviour name, or None."""
        name = name.removeprefix("mock/")
        if name in self.entries:
            return self.entries[name]
        return (name, {}) if name in BEHAVIOURS and name != "script" else None

    def generate(self, schema: Any, seed: int) -> Any:
        """schema_gen.generate, memoized: repeated schemas cost one dict lookup."""
        key = (orjson.dumps(schema, option=orjson.OPT_SORT_KEYS), seed)
        if key not in self.schema_memo:
            if len(self.schema_memo) >= _SCHEMA_MEMO_SIZE:
                self.schema_memo.clear()
            self.schema_memo[key] = schema_gen.generate(schema, seed)
        return self.schema_memo[key]


class ChatCompletions:
    """POST /v1/chat/completions."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = await _parse(receive, send, self.state)
        if found is None:
            return
        name, behaviour, options, request = found
        reply = plan_reply(
            behaviour, options, request, _count(self.state, name), generate=self.state.generate
        )
        if not await _first_byte(reply, receive, send, self.state, name):
            return
        model = str(request.get("model"))
        rid, created = f"{self.state.id_prefix}{next(self.state.ids):08x}", int(time.time())
        n: int = request["n"] if isinstance(request.get("n"), int) and 1 <= request["n"] <= 16 else 1
        if request.get("stream") is True:
            options_ = request.get("stream_options")
            usage = isinstance(options_, Mapping) and options_.get("include_usage") is True
            events, closing = render.stream_events(reply, model, rid, created, include_usage=usage, n=n)
            await _stream(reply, events, closing, receive, send, self.state, name)
        else:
            await _whole(
                reply, render.completion(reply, model, rid, created, n), receive, send, self.state, name
            )


class Embeddings:
    """POST /v1/embeddings."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = await _parse(receive, send, self.state)
        if found is None:
            return
        name, behaviour, options, request = found
        reply = plan_reply(behaviour, options, {"messages": []}, _count(self.state, name))
        if not await _first_byte(reply, receive, send, self.state, name):
            return
        texts = embedding_texts(request.get("input"))
        dims = request.get("dimensions") or options.get("dimensions") or 8
        vectors = embed(texts, int(dims), int(options.get("seed", 0)))
        tokens = max(1, sum(len(t) for t in texts) // 4)
        encoding = str(request.get("encoding_format") or "float")
        await _respond(send, 200, render.embeddings(vectors, str(request.get("model")), tokens, encoding))


async def _parse(
    receive: Receive, send: Send, state: MockState
) -> tuple[str, str, Mapping[str, Any], dict[str, Any]] | None:
    """(name, behaviour, options, request) or None after answering 400/404 (or on disconnect)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    try:
        request = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        await _respond(send, 400, render.error_body(400, "mock: the body is not valid JSON", "invalid_json"))
        return None
    if not isinstance(request, dict) or not isinstance(request.get("model"), str):
        await _respond(send, 400, render.error_body(400, "mock: the body must be an object with a `model`"))
        return None
    name = request["model"]
    entry = state.lookup(name)
    if entry is None:
        await _respond(send, 404, render.error_body(404, f"mock: no behaviour or label named {name!r}"))
        return None
    return name, entry[0], entry[1], request


def _count(state: MockState, name: str) -> int:
    index = state.calls[name]
    state.calls[name] = index + 1
    return index


async def _first_byte(reply: MockReply, receive: Receive, send: Send, state: MockState, name: str) -> bool:
    """Wait the latency, answer errors / timeouts / malformed bodies; True when content should follow."""
    if reply.latency_ms > 0 and await _client_left(receive, reply.latency_ms / 1000, state, name):
        return False
    if reply.kind == "timeout":
        await _client_left(receive, None, state, name)
        return False
    if reply.kind == "error":
        extra = [(b"retry-after", f"{reply.retry_after:g}".encode())] if reply.retry_after is not None else []
        await _respond(send, reply.status, render.error_body(reply.status, reply.message), extra=extra)
        return False
    if reply.kind == "malformed" and reply.body == "html":
        await _respond(send, 200, render.HTML_BODY, content_type=b"text/html; charset=utf-8")
        return False
    return True


async def _whole(
    reply: MockReply, body: bytes, receive: Receive, send: Send, state: MockState, name: str
) -> None:
    if reply.kind == "malformed":
        truncated = reply.body == "truncated"
        body = body[: len(body) * 2 // 3] if truncated else body
        await _respond(send, 200, body, content_type=_JSON if truncated else b"text/plain; charset=utf-8")
    elif reply.kind == "stream_error":
        await _respond(send, 200, render.error_body(500, reply.message))  # an error object in a 200 body
    elif reply.kind == "stall" or reply.stream_cut:
        length = [] if reply.kind == "stall" else [(b"content-length", str(len(body)).encode())]
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", _JSON), *length]}
        )
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        if reply.kind == "stall":
            await _client_left(receive, None, state, name)
        # returning without the final body makes the server drop the connection mid-response
    else:
        await _respond(send, 200, body)


async def _stream(
    reply: MockReply,
    events: list[bytes],
    closing: list[bytes],
    receive: Receive,
    send: Send,
    state: MockState,
    name: str,
    *,
    failure: Callable[[int], bytes] | None = None,
) -> None:
    """Send the SSE `events`, then `closing`, or the reply's fault. `failure(sent)` renders an in-band
    error after `sent` events (default: chat's `data: {"error": ...}`)."""
    content_type = _JSON if reply.kind == "malformed" and reply.body == "wrong_content_type" else _SSE
    headers = [(b"content-type", content_type), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    failing = reply.stream_cut or reply.kind in ("stall", "stream_error")
    if failing:
        events = events[: 1 + max(1, (len(events) - 1) // 2)]
    elif reply.kind == "malformed" and reply.body == "truncated":
        events = [events[0], events[min(1, len(events) - 1)][:40] + b"\n\n"]
    if reply.chunk_delay_ms > 0:
        for index, event in enumerate(events):
            if index and await _client_left(receive, reply.chunk_delay_ms / 1000, state, name):
                return
            await send({"type": "http.response.body", "body": event, "more_body": True})
    else:
        await send({"type": "http.response.body", "body": b"".join(events), "more_body": True})
    if reply.kind == "stall":
        await _client_left(receive, None, state, name)
    elif reply.kind == "stream_error":
        tail = failure(len(events)) if failure is not None else render.error_event(reply.message)
        await send({"type": "http.response.body", "body": tail})
    elif not reply.stream_cut:  # a cut returns here, so the server drops the connection without [DONE]
        tail = render.DONE if reply.kind == "malformed" and reply.body == "truncated" else b"".join(closing)
        await send({"type": "http.response.body", "body": tail})


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = _JSON,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _client_left(receive: Receive, seconds: float | None, state: MockState, name: str) -> bool:
    """Wait `seconds` (None: until the client leaves); True, counted as a disconnect, if the client left."""
    try:
        await asyncio.wait_for(_disconnected(receive), seconds)
    except TimeoutError:
        return False
    state.disconnects[name] += 1
    return True


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
