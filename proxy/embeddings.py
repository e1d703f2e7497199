"""POST /v1/embeddings: forwarded along the alias's chain with retries, cached, not validated."""

from __future__ import annotations

import time
from collections.abc import Mapping

import orjson
from starlette.responses import Response

from .auth import Caller
from .cache import cache_key, decode_entry, encode_entry
from .errors import UpstreamFailure
from .pipeline import cache_mode
from .services import Runtime, Services
from .settings import ModelAlias
from .wire import EmbeddingRequest

__all__ = ["handle_embeddings"]


async def handle_embeddings(
    services: Services,
    runtime: Runtime,
    caller: Caller,
    request: EmbeddingRequest,
    alias: ModelAlias,
    headers: Mapping[str, str],
) -> Response:
    settings = runtime.settings
    mode = cache_mode(headers.get("cache-control", ""), enabled=settings.cache.backend != "none")
    key = cache_key(
        request=request.body,
        alias=request.model,
        deployments=[d.model for d in alias.deployments],
        policy_name="",
        policy_hash="",
        scope_key_hash=caller.key_hash if settings.cache.scope == "key" else None,
        kind="embeddings",  # never shares entries with chat; `user` and `model` stay out of the key
    )
    meta = {"x-guardproxy-cache-key": key, "x-guardproxy-policy": "", "x-guardproxy-outcome": "pass"}
    if mode.read:
        hit = decode_entry(await services.cache.get(key))
        if hit is not None:
            return _respond(
                hit.response,
                {
                    **meta,
                    "x-guardproxy-cache": "hit",
                    "x-guardproxy-attempts": "0",
                    "x-guardproxy-deployment": hit.deployment,
                },
            )
    resilience = runtime.resilience
    deadline = resilience.deadline()
    calls = 0
    failures: list[UpstreamFailure] = []
    for index, dep in enumerate(alias.deployments):

        def may_attempt() -> bool:
            return True

        async def attempt(remaining: float, dep=dep, index=index):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return await services.upstream.embed(
                dep, request.body, key=f"{request.model}#emb{index}", timeout=min(dep.timeout, remaining)
            )

        try:
            result = await resilience.call(attempt, deadline=deadline, may_attempt=may_attempt)
        except UpstreamFailure as exc:
            failures.append(exc)
            if not exc.fallback:
                raise
            continue
        if mode.write:
            entry = encode_entry(
                response=result.completion,
                deployment=dep.model,
                outcome="pass",
                repairs=(),
                created=time.time(),
            )
            await services.cache.set(key, entry, settings.cache.ttl)
        return _respond(
            result.completion,
            {
                **meta,
                "x-guardproxy-cache": mode.label,
                "x-guardproxy-attempts": str(calls),
                "x-guardproxy-deployment": dep.model,
                "x-guardproxy-total-tokens": str(result.tokens),
            },
        )
    raise resilience.final_failure(failures, deadline)


def _respond(body: Mapping[str, object], headers: Mapping[str, str]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=dict(headers))
