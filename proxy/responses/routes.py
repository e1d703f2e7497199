"""`/v1/responses`: a front door onto the chat pipeline. The request is translated to chat completions,
run through the same policy -> cache -> ladder -> store path as `/v1/chat/completions`, and its answer
translated back (JSON -> Response object, chat chunks -> the Responses event stream). An alias with
`api: responses` deployments gets the client's own body there too (`native.NativeRequest`): built-in
tools pass through, and the provider's built-in tool items come back in `output`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..answer import Answer, Ledger
from ..pipeline import ChatCall, handle_chat
from ..respond import SSE_HEADERS, AnswerMeta
from ..routes import AccountedEndpoint, admitted, services_of
from ..services import Services
from ..wire import decode_body, parse_chat_request
from .events import ChunkTranslator, sse_event
from .native import NativeRequest, has_native
from .store import MemoryResponses, ResponseStore, StoredResponse, input_item_list
from .translate import ChatTranslation, assistant_message, new_id, to_chat, to_response

__all__ = ["create_response", "delete_response", "get_response", "list_input_items"]

_OUR_HEADERS = b"x-guardproxy-"
_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def _store(state: Any, services: Services) -> ResponseStore:
    """The cache backend keeps stored responses; with `cache.backend: none`, this app's memory does."""
    ttl = services.runtime.settings.responses.ttl
    if services.cache.name != "none":
        return ResponseStore(services.cache, ttl=ttl)
    if getattr(state, "responses_memory", None) is None:
        memory_mb = services.runtime.settings.responses.memory_mb  # read once: the first store made
        state.responses_memory = MemoryResponses(max_bytes=memory_mb * 2**20)
    return ResponseStore(state.responses_memory, ttl=ttl)


async def _create(services: Services, scope: Scope, receive: Receive, ledger: Ledger) -> Answer:
    """The chat path's answer, translated; its meta (tokens, outcome, status) is the Response's."""
    runtime = services.runtime
    headers, caller, raw = await admitted(services, scope, receive, ledger)
    data = decode_body(raw)
    store = _store(scope["app"].state, services)
    history: list[dict[str, Any]] = []
    if data.get("previous_response_id") is not None:
        history = (await store.previous(data["previous_response_id"], caller.key_hash)).messages
    model = data.get("model")
    native = has_native(runtime.settings.models.get(model) if isinstance(model, str) else None)
    translation = to_chat(data, history, builtin_tools=native)
    if translation.body.get("stream") is True:  # the usage ends up in response.completed
        translation.body["stream_options"] = {"include_usage": True}
    chat = parse_chat_request(translation.body, runtime.settings.limits)
    ledger.alias = chat.model if chat.model in runtime.settings.models else ""
    # the alias has `api: responses` deployments: they get the client's own body (built-in tools and all)
    request = (
        NativeRequest.of(data, history, translation.input_items, len(chat.body["messages"]))
        if native
        else None
    )
    # the Response id carries the request id, so POST /v1/feedback accepts either
    response_id = "resp_" + (ledger.request_id or new_id("r")[2:])
    keep = store if translation.echo["store"] else None
    reply = _Reply(translation, chat.model, response_id, keep, caller.key_hash, request)
    call = ChatCall(runtime, caller, chat, headers, ledger, native=request)
    # a complete answer becomes the Response object straight from the completion
    answer = await handle_chat(services, call, render=reply.json)
    if answer.response.status_code >= 400 or not chat.stream:  # an error as chat made it, or `reply.json`'s
        return answer
    return Answer(reply.events(answer), answer.meta)


create_response = AccountedEndpoint("responses", _create)  # POST /v1/responses, accounted for like chat


@dataclass(slots=True)
class _Reply:
    """One request's answer as a Response object: its id, what it echoes, where it is kept (`store`
    None: `store: false`) and, for `api: responses`, the provider's built-in tool items ahead of the
    answer's (`native.items`)."""

    translation: ChatTranslation
    model: str
    response_id: str
    store: ResponseStore | None
    key_hash: str | None
    native: NativeRequest | None

    def json(self, completion: Mapping[str, Any], meta: AnswerMeta) -> Response:
        """The `pipeline.Render` of a complete answer: its Response object, encoded once (the body sent
        and the stored copy), with the headers chat's JSON would have had."""
        final = to_response(completion, self.translation.echo, response_id=self.response_id, model=self.model)
        if self.native is not None:
            final["output"] = [*self.native.items, *final["output"]]
        body = orjson.dumps(final)
        ours = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in meta.headers().items()]
        return _StoredFirst(body, ours, lambda: self.save(final, body))

    def events(self, answer: Answer) -> Response:
        """A streamed answer (chat chunks) as the Responses event stream."""
        translator = ChunkTranslator(
            self.translation.echo, response_id=self.response_id, model=self.model, created_at=time.time()
        )
        ours = {k.decode("latin-1"): v.decode("latin-1") for k, v in _our_headers(answer.response)}
        return StreamingResponse(
            _events(answer, translator, self.save, self.native),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **ours},
        )

    async def save(self, final: dict[str, Any], encoded: bytes | None = None) -> None:
        if self.store is not None:
            await self.store.put(_stored(final, self.translation), self.key_hash, response_json=encoded)


def _our_headers(answer: Response) -> list[tuple[bytes, bytes]]:
    """The chat answer's x-guardproxy-* headers, as sent (raw: nothing decoded and encoded again)."""
    return [(k, v) for k, v in answer.raw_headers if k.startswith(_OUR_HEADERS)]


class _StoredFirst(Response):
    """The Response object's JSON, stored (when asked) before it is sent: the client may continue it
    (`previous_response_id`) as soon as it has read it. Headers: the guardproxy ones, already encoded,
    then the body's own length and type (as Starlette would have added them)."""

    media_type = "application/json"

    def __init__(
        self, body: bytes, ours: list[tuple[bytes, bytes]], save: Callable[[], Awaitable[None]]
    ) -> None:
        self._ours, self._save = ours, save
        super().__init__(body)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        length = (b"content-length", str(len(self.body)).encode())
        self.raw_headers = [*self._ours, length, (b"content-type", b"application/json")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._save()
        await super().__call__(scope, receive, send)


def _stored(final: dict[str, Any], translation: ChatTranslation) -> StoredResponse:
    items = []
    for item in translation.input_items:
        item = dict(item)
        if "id" not in item:
            item["id"] = new_id(_ITEM_PREFIX.get(item["type"], "item"))
        if item["type"] == "message":
            item.setdefault("status", "completed")
        items.append(item)
    # the turn's `instructions` (the first chat message) do not carry over to the next response (as OpenAI)
    skip = 1 if translation.echo["instructions"] is not None else 0
    history = translation.body["messages"][skip:]
    messages = [*history, assistant_message(final["output"])]
    return StoredResponse(response=final, input_items=items, messages=messages)


async def _chat_sse(answer: Response) -> AsyncGenerator[bytes, None]:
    """The chat answer's SSE bytes, whether it was replayed in one body or streamed."""
    iterator = getattr(answer, "body_iterator", None)
    if iterator is None:
        yield bytes(answer.body)
        return
    try:
        async for chunk in iterator:
            yield chunk if isinstance(chunk, bytes) else str(chunk).encode()
    finally:  # closing us (the client left) closes the chat stream, and with it the upstream one
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


async def _events(
    answer: Answer, translator: ChunkTranslator, save: Any, native: NativeRequest | None
) -> AsyncIterator[bytes]:
    for event in translator.start():
        yield sse_event(event)
    # the answer is settled before its first chunk (buffer mode): so are the provider's built-in items
    given = native is None
    buffer = b""
    done = failed = False
    async with contextlib.aclosing(_chat_sse(answer.response)) as raw:
        async for data in raw:
            buffer += data
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                if block.startswith(b":"):  # keep-alive comment
                    yield block + b"\n\n"
                    continue
                payload = block.removeprefix(b"data: ").strip()
                if payload == b"[DONE]":
                    done = True
                    continue
                chunk = orjson.loads(payload)
                if "error" in chunk:
                    failed = True
                    for event in translator.fail(chunk):
                        yield sse_event(event)
                    return
                if not given:
                    given = True
                    for event in translator.given(native.items if native is not None else []):
                        yield sse_event(event)
                for event in translator.feed(chunk):
                    yield sse_event(event)
    if not done and not failed:
        if answer.meta is not None and answer.meta.status is None:
            answer.meta.status = 502  # accounted for as the failure it was, not the 200 it began as
        for event in translator.fail({"message": "The answer's stream ended before it was complete."}):
            yield sse_event(event)
        return
    events = translator.finish()
    if translator.final is not None:
        await save(translator.final)
    for event in events:
        yield sse_event(event)


async def get_response(request: Request) -> Response:
    """GET /v1/responses/{id}: a stored response of the caller's key (404 otherwise)."""
    services = services_of(request)
    caller = services.runtime.keys.authenticate(request.headers.get("authorization"))
    stored = await _store(request.app.state, services).find(
        request.path_params["response_id"], caller.key_hash
    )
    return Response(orjson.dumps(stored.response), media_type="application/json")


async def delete_response(request: Request) -> Response:
    """DELETE /v1/responses/{id}."""
    services = services_of(request)
    caller = services.runtime.keys.authenticate(request.headers.get("authorization"))
    response_id = request.path_params["response_id"]
    await _store(request.app.state, services).delete(response_id, caller.key_hash)
    body = {"id": response_id, "object": "response.deleted", "deleted": True}
    return Response(orjson.dumps(body), media_type="application/json")


async def list_input_items(request: Request) -> Response:
    """GET /v1/responses/{id}/input_items."""
    services = services_of(request)
    caller = services.runtime.keys.authenticate(request.headers.get("authorization"))
    stored = await _store(request.app.state, services).find(
        request.path_params["response_id"], caller.key_hash
    )
    page = input_item_list(stored.input_items, request.query_params)
    return Response(orjson.dumps(page), media_type="application/json")
