"""Thin HTTP endpoints: read and parse, authenticate, hand over to the pipeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .answer import Answer, Ledger
from .auth import Caller, KeyStore
from .errors import (
    ModelNotFound,
    PermissionDenied,
    ProxyError,
    RequestTooLarge,
    internal_error,
)
from .pipeline import ChatCall, handle_chat
from .services import Services
from .settings import ServerSettings
from .wire import decode_body, parse_chat_request, parse_embedding_request

log = logging.getLogger("guardproxy")


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def authenticated(scope: Scope, keys: KeyStore, authorization: str | None) -> Caller:
    """The caller the guard authenticated with these same keys (proxy.app), else authenticate now."""
    found = scope.get("state", {}).get("caller")
    if found is not None and found[0] is keys:
        caller: Caller = found[1]
        return caller
    return keys.authenticate(authorization)


async def admitted(
    services: Services, scope: Scope, receive: Receive, ledger: Ledger
) -> tuple[dict[str, str], Caller, bytes]:
    """The headers, the caller and the body of an API request, in that order: the key is checked from the
    headers before the body is awaited (a keyless caller, who holds no in-flight slot, cannot keep a
    connection busy for `body_timeout`), and the caller's rpm/tpm admit it once the body is complete."""
    runtime = services.runtime
    headers = header_map(scope)
    caller = ledger.caller = authenticated(scope, runtime.keys, headers.get("authorization"))
    raw = await read_body(receive, headers, runtime.settings.server)
    await services.limiter.admit(caller.name, caller.rpm, caller.tpm)
    return headers, caller, raw


def header_map(scope: Scope) -> dict[str, str]:
    """The request headers by lower-case name (the first of repeated ones, as Starlette's `get`)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


async def read_body(receive: Receive, headers: Mapping[str, str], server: ServerSettings) -> bytes:
    """The request body: 413 as soon as it passes the size limit. A body still arriving
    `server.body_timeout` after the request began is cut by `proxy.lifecycle` (one timer for all
    requests): `receive` raises its 408 `RequestTimeout`."""
    limit = server.max_body_bytes
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


Handler = Callable[[Services, Scope, Receive, Ledger], Awaitable[Answer]]


class AccountedEndpoint:
    """A plain ASGI endpoint (no Starlette Request) that runs `handler`, sends its answer, then accounts
    for it once it has ended, at the client's disconnect at the latest (proxy.answer). A refusal the
    handler raises becomes its error answer; `route` labels the request metrics."""

    def __init__(self, route: str, handler: Handler) -> None:
        self.route, self.handler = route, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        ledger = Ledger.open(services, scope, self.route)
        answer: Answer | None = None
        gone: int | None = None
        try:
            try:
                answer = await self.handler(services, scope, receive, ledger)
            except ProxyError as exc:
                answer = Answer.failed(exc)
            except ClientGone:
                raise
            except Exception as exc:
                log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
                answer = Answer.failed(internal_error())
            await answer(scope, receive, send)
        except ClientGone:
            gone = 499  # nobody left to answer
        except asyncio.CancelledError:
            gone = 499  # the client went away (proxy.lifecycle cancelled the request), not a server error
            raise
        finally:
            await ledger.close(answer, status=gone)


class ChatEndpoint(AccountedEndpoint):
    """POST /v1/chat/completions: the hot path passes through no router (proxy.app sends it here)."""

    def __init__(self) -> None:
        super().__init__("chat", _chat)


async def _chat(services: Services, scope: Scope, receive: Receive, ledger: Ledger) -> Answer:
    runtime = services.runtime
    headers, caller, raw = await admitted(services, scope, receive, ledger)
    hits = services.hits
    if hits is not None:  # these exact bytes were a hit before: answer from memory (proxy.hits)
        hit = hits.find(runtime, raw, caller, headers)
        if hit is not None:
            ledger.alias = hit.alias
            hit.count(services.metrics)
            return hit.answer
    chat = parse_chat_request(decode_body(raw), runtime.settings.limits)
    ledger.alias = chat.model if chat.model in runtime.settings.models else ""
    answer = await handle_chat(services, ChatCall(runtime, caller, chat, headers, ledger))
    meta = answer.meta
    if hits is not None and meta is not None and meta.cache == "hit" and answer.error is None:
        hits.learn(
            runtime,
            raw,
            caller,
            headers,
            stream=chat.stream,
            include_usage=chat.include_usage,
            meta=meta,
            alias=chat.model,
        )
    return answer


async def _embeddings(services: Services, scope: Scope, receive: Receive, ledger: Ledger) -> Answer:
    runtime = services.runtime
    headers, caller, raw = await admitted(services, scope, receive, ledger)
    embed = parse_embedding_request(decode_body(raw))
    alias = runtime.settings.models.get(embed.model)
    if alias is None:
        raise ModelNotFound(
            f"The model '{embed.model}' does not exist; GET /v1/models lists the models.", param="model"
        )
    caller.check_alias(embed.model)
    ledger.alias = embed.model
    from .embeddings import handle_embeddings

    return await handle_embeddings(services, caller, embed, alias, headers)


embeddings = AccountedEndpoint("embeddings", _embeddings)


async def list_models(request: Request) -> Response:
    runtime = services_of(request).runtime
    caller = runtime.keys.authenticate(request.headers.get("authorization"))
    data = [_model_entry(name) for name in runtime.settings.models if caller.may_use(name)]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def get_model(request: Request) -> Response:
    """GET /v1/models/{id}: the alias as it appears in the list; 404 when unknown or not the caller's."""
    runtime = services_of(request).runtime
    caller = runtime.keys.authenticate(request.headers.get("authorization"))
    name = request.path_params["model_id"]
    if name not in runtime.settings.models or not caller.may_use(name):
        raise ModelNotFound(
            f"The model '{name}' does not exist; GET /v1/models lists the models.", param="model"
        )
    return Response(orjson.dumps(_model_entry(name)), media_type="application/json")


def _model_entry(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "guardproxy"}


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    services = services_of(request)
    if services.runtime.settings.server.metrics_auth == "admin":  # keys, aliases and spend per tenant
        caller = services.runtime.keys.authenticate(request.headers.get("authorization"))
        if not caller.admin:  # the anonymous caller (no keys configured) is admin
            raise PermissionDenied("This API key may not read /metrics; use a key with admin: true.")
    for key, cooling in services.resilience.cooldowns.states().items():
        services.metrics.cooldown.labels(key).set(1 if cooling else 0)
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
