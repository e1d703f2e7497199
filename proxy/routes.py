"""Thin HTTP endpoints: read and parse, authenticate, hand over to the pipeline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .access_log import log_request
from .errors import ModelNotFound, ProxyError, RequestTimeout, RequestTooLarge, internal_error
from .pipeline import handle_chat
from .respond import error_response
from .services import Services
from .settings import ServerSettings
from .wire import decode_body, parse_chat_request, parse_embedding_request

log = logging.getLogger("guardproxy")


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def header_map(scope: Scope) -> dict[str, str]:
    """The request headers by lower-case name (the first of repeated ones, as Starlette's `get`)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


async def read_body(receive: Receive, headers: Mapping[str, str], server: ServerSettings) -> bytes:
    """The request body: 413 as soon as it passes the size limit, 408 when it trickles past the timeout."""
    limit = server.max_body_bytes
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(server.body_timeout):
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
    except TimeoutError:
        raise RequestTimeout(f"The request body did not arrive within {server.body_timeout:g} s.") from None


class ChatEndpoint:
    """POST /v1/chat/completions as a plain ASGI app: the hot path builds no Starlette Request and
    passes through no router (proxy.app sends it here directly)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        response = await _chat(services, scope, receive)
        if response is not None:
            await response(scope, receive, send)


async def _chat(services: Services, scope: Scope, receive: Receive) -> Response | None:
    runtime = services.runtime
    started = time.perf_counter()
    alias, status, outcome = "", 500, "error"
    caller = None
    meta = None
    response: Response | None = None
    headers = header_map(scope)
    request_id = scope.get("state", {}).get("request_id", "")
    try:
        raw = await read_body(receive, headers, runtime.settings.server)
        caller = runtime.keys.authenticate(headers.get("authorization"))
        await services.limiter.admit(caller.name, caller.rpm, caller.tpm)
        chat = parse_chat_request(decode_body(raw), runtime.settings.limits)
        alias = chat.model if chat.model in runtime.settings.models else ""
        response, meta = await handle_chat(services, runtime, caller, chat, headers, request_id=request_id)
        status = response.status_code
        outcome = meta.outcome if meta else "pass"
        if meta is not None and meta.tokens:
            services.metrics.tokens.labels(alias, caller.name).inc(meta.tokens)
            if meta.cost:
                services.metrics.cost.labels(alias, caller.name).inc(meta.cost)
    except ProxyError as exc:
        status = exc.status_code
        outcome = "rejected" if status == 422 else "error"
        meta = getattr(exc, "answer_meta", None)
        response = error_response(exc)
    except ClientGone:
        status = 499  # nobody left to answer
    except asyncio.CancelledError:
        status = 499  # the client went away (proxy.lifecycle cancelled the request), not a server error
        raise
    except Exception as exc:
        log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
        response = error_response(internal_error())
    finally:
        services.metrics.requests.labels(alias, outcome, str(status)).inc()
        services.metrics.latency.labels(alias).observe(time.perf_counter() - started)
        tokens = meta.tokens if meta is not None else 0
        if caller is not None and tokens:
            await services.limiter.spend(caller.name, tokens)
        log_request(
            request_id=request_id,
            method="POST",
            path=scope["path"],
            key=caller.name if caller is not None else None,
            alias=alias,
            policy=meta.policy if meta is not None else None,
            deployment=meta.deployment if meta is not None else None,
            outcome=outcome,
            attempts=meta.attempts if meta is not None else 0,
            cache=meta.cache if meta is not None else None,
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            tokens=tokens,
            cost=meta.cost if meta is not None else None,
        )
    return response


async def embeddings(request: Request) -> Response:
    services = services_of(request)
    started = time.perf_counter()
    status, response = 500, None
    try:
        response = await _embeddings(request, services)
        status = response.status_code
        return response
    except ProxyError as exc:
        status = exc.status_code
        raise
    finally:
        headers = response.headers if response is not None else {}
        tokens = int(headers.get("x-guardproxy-total-tokens", 0))
        key_name = request.scope.get("state", {}).get("key_name")
        if key_name and tokens:
            await services.limiter.spend(key_name, tokens)
        log_request(
            request_id=request.scope.get("state", {}).get("request_id", ""),
            method=request.method,
            path=request.url.path,
            key=key_name,
            alias=request.scope.get("state", {}).get("alias"),
            deployment=headers.get("x-guardproxy-deployment"),
            outcome="pass" if status == 200 else "error",
            attempts=int(headers.get("x-guardproxy-attempts", 0)),
            cache=headers.get("x-guardproxy-cache"),
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            tokens=tokens,
        )


async def _embeddings(request: Request, services: Services) -> Response:
    runtime = services.runtime
    raw = await read_body(request.receive, request.headers, runtime.settings.server)
    caller = runtime.keys.authenticate(request.headers.get("authorization"))
    request.scope.setdefault("state", {})["key_name"] = caller.name
    await services.limiter.admit(caller.name, caller.rpm, caller.tpm)
    embed = parse_embedding_request(decode_body(raw))
    alias = runtime.settings.models.get(embed.model)
    if alias is None:
        raise ModelNotFound(
            f"The model '{embed.model}' does not exist; GET /v1/models lists the models.", param="model"
        )
    caller.check_alias(embed.model)
    request.scope["state"]["alias"] = embed.model
    from .embeddings import handle_embeddings

    return await handle_embeddings(services, runtime, caller, embed, alias, request.headers)


async def list_models(request: Request) -> Response:
    runtime = services_of(request).runtime
    caller = runtime.keys.authenticate(request.headers.get("authorization"))
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "guardproxy"}
        for name in runtime.settings.models
        if caller.may_use(name)
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    services = services_of(request)
    for key, cooling in services.runtime.resilience.cooldowns.states().items():
        services.metrics.cooldown.labels(key).set(1 if cooling else 0)
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
