"""Thin HTTP endpoints: read and parse, authenticate, hand over to the pipeline."""

from __future__ import annotations

import asyncio
import time

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ModelNotFound, ProxyError, RequestTooLarge
from .pipeline import handle_chat
from .services import Services
from .wire import decode_body, parse_chat_request, parse_embedding_request

__all__ = ["chat_completions", "embeddings", "health", "list_models", "metrics"]


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    return bytes(body)


async def chat_completions(request: Request) -> Response:
    services = services_of(request)
    runtime = services.runtime
    started = time.perf_counter()
    alias, status, outcome = "", 500, "error"
    try:
        raw = await read_body(request, runtime.settings.server.max_body_bytes)
        caller = runtime.keys.authenticate(request.headers.get("authorization"))
        chat = parse_chat_request(decode_body(raw), runtime.settings.limits)
        alias = chat.model if chat.model in runtime.settings.models else ""
        response, meta = await handle_chat(services, runtime, caller, chat, request.headers)
        status = response.status_code
        outcome = meta.outcome if meta else "pass"
        if meta is not None and meta.tokens:
            services.metrics.tokens.labels(alias, caller.name).inc(meta.tokens)
            if meta.cost:
                services.metrics.cost.labels(alias, caller.name).inc(meta.cost)
        return response
    except ProxyError as exc:
        status = exc.status_code
        outcome = "rejected" if status == 422 else "error"
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away (proxy.lifecycle cancelled the request), not a server error
        raise
    finally:
        services.metrics.requests.labels(alias, outcome, str(status)).inc()
        services.metrics.latency.labels(alias).observe(time.perf_counter() - started)


async def embeddings(request: Request) -> Response:
    services = services_of(request)
    runtime = services.runtime
    raw = await read_body(request, runtime.settings.server.max_body_bytes)
    caller = runtime.keys.authenticate(request.headers.get("authorization"))
    embed = parse_embedding_request(decode_body(raw))
    alias = runtime.settings.models.get(embed.model)
    if alias is None:
        raise ModelNotFound(
            f"The model '{embed.model}' does not exist; GET /v1/models lists the models.", param="model"
        )
    caller.check_alias(embed.model)
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
