"""`POST /v1/responses` on the mock server: the request is translated to chat with the gateway's own
`proxy.responses.translate`, planned and rendered as a chat completion, and translated back (the JSON
Response object, or the Responses event stream); faults (errors, stalls, cuts) behave as on chat, except
that a stream failing mid-way ends as the Responses API's do (and guardproxy's own route): an `error`
event, then `response.failed`.
The mock is stateless: `previous_response_id` is echoed, not looked up; built-in tools are ignored (the
last body is kept for `GET /mock/last`).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson

from proxy.errors import ProxyError
from proxy.mock import render
from proxy.mock._endpoints import (
    MockState,
    Receive,
    Scope,
    Send,
    _count,
    _first_byte,
    _parse,
    _respond,
    _stream,
    _whole,
)
from proxy.mock.behaviours import plan_reply
from proxy.responses.events import ChunkTranslator, sse_event
from proxy.responses.translate import ChatTranslation, to_chat, to_response

__all__ = ["Responses"]


class Responses:
    """POST /v1/responses."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = await _parse(receive, send, self.state)
        if found is None:
            return
        name, behaviour, options, request = found
        self.state.last["/v1/responses"] = copy.deepcopy(request)
        tools = request.get("tools")
        if isinstance(tools, list):  # a real provider would run its built-in tools; the mock has none
            request["tools"] = [t for t in tools if not isinstance(t, dict) or t.get("type") == "function"]
        try:
            translation = to_chat(request)
        except ProxyError as exc:
            await _respond(send, 400, render.error_body(400, f"mock: {exc.message}"))
            return
        chat = translation.body
        reply = plan_reply(behaviour, options, chat, _count(self.state, name), generate=self.state.generate)
        if not await _first_byte(reply, receive, send, self.state, name):
            return
        model = str(request["model"])
        rid, created = f"resp_mock{self.state.id_prefix[-12:]}{next(self.state.ids):08x}", int(time.time())
        if request.get("stream") is not True:
            completion = orjson.loads(render.completion(reply, model, rid, created))
            body = orjson.dumps(to_response(completion, translation.echo, response_id=rid, model=model))
            await _whole(reply, body, receive, send, self.state, name)
            return
        chat_events, chat_closing = render.stream_events(reply, model, rid, created, include_usage=True)
        stream = _ResponseStream(translation, rid, model, created, failing=reply.kind == "stream_error")
        events, closing = stream.events(chat_events, chat_closing)

        def failure(sent: int) -> bytes:  # the first `sent` events went out, then the upstream failed
            return stream.failure(sent, reply.message)

        await _stream(reply, events, closing, receive, send, self.state, name, failure=failure)


class _ResponseStream:
    """The chat SSE events of one reply as Responses events, one block per chat event (so cuts and
    failures fall where they did on chat)."""

    def __init__(self, translation: ChatTranslation, rid: str, model: str, created: float, *, failing: bool):
        self._translator = ChunkTranslator(translation.echo, response_id=rid, model=model, created_at=created)
        # a failing reply: the translator as it was after each block, to end the stream where it is cut
        self._after: list[ChunkTranslator] | None = [] if failing else None

    def events(self, chat_events: list[bytes], closing: list[bytes]) -> tuple[list[bytes], list[bytes]]:
        head = _sse(self._translator.start())  # goes out with the first chat event's translation
        out = []
        for block in chat_events:
            out.append(head + _sse(self._feed(block)))
            head = b""
            if self._after is not None:
                self._after.append(copy.deepcopy(self._translator))
        out = out or [head]
        tail = [e for block in closing for e in self._feed(block)] + self._translator.finish()
        return out, [_sse(tail)]

    def failure(self, sent: int, message: str) -> bytes:
        """`error` and `response.failed` after `sent` blocks (the same items, sequence numbers going on)."""
        assert self._after is not None and sent > 0
        translator = self._after[sent - 1]
        return _sse(translator.fail({"error": {"message": message, "type": "server_error", "code": None}}))

    def _feed(self, block: bytes) -> list[dict[str, Any]]:
        payload = block.removeprefix(b"data: ").strip()
        return [] if payload == b"[DONE]" else self._translator.feed(orjson.loads(payload))


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(sse_event(e) for e in events)
