"""Thin HTTP endpoints: read and parse, authenticate, hand over to the pipeline."""

from __future__ import annotations

import asyncio
import time

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .access_log import log_request
from .errors import ModelNotFound, ProxyError, RequestTimeout, RequestTooLarge
from .pipeline import handle_chat
from .services import Services
from .settings import ServerSettings
from .wire import decode_body, parse_chat_request, parse_embedding_request

__all__ = ["chat_completions", "embeddings", "health", "list_models", "metrics"]


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def read_body(request: Request, server: ServerSettings) -> bytes:
    """The request body: 413 as soon as it passes the size limit, 408 when it trickles past the timeout."""
    limit = server.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    body = bytearray()
    try:
        async with asyncio.timeout(server.body_timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise RequestTooLarge(f"The request body is larger than the {limit}-byte limit.")
    except TimeoutError:
        raise RequestTimeout(f"The request body did not arrive within {server.body_timeout:g} s.") from None
    return bytes(body)


async def chat_completions(request: Request) -> Response:
    services = services_of(request)
    runtime = services.runtime
    started = time.perf_counter()
    alias, status, outcome = "", 500, "error"
    caller = None
    meta = None
    request_id = request.scope.get("state", {}).get("request_id", "")
    try:
        raw = await read_body(request, runtime.settings.server)
        caller = runtime.keys.authenticate(request.headers.get("authorization"))
        await services.limiter.admit(caller.name, caller.rpm, caller.tpm)
        chat = parse_chat_request(decode_body(raw), runtime.settings.limits)
        alias = chat.model if chat.model in runtime.settings.models else ""
        response, meta = await handle_chat(
            services, runtime, caller, chat, request.headers, request_id=request_id
        )
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
        meta = getattr(exc, "answer_meta", None)
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away (proxy.lifecycle cancelled the request), not a server error
        raise
    finally:
        services.metrics.requests.labels(alias, outcome, str(status)).inc()
        services.metrics.latency.labels(alias).observe(time.perf_counter() - started)
        tokens = meta.tokens if meta is not None else 0
        if caller is not None and tokens:
            await services.limiter.spend(caller.name, tokens)
        log_request(
            request_id=request_id,
            method=request.method,
            path=request.url.path,
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
    raw = await read_body(request, runtime.settings.server)
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
