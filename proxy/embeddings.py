"""POST /v1/embeddings: forwarded along the alias's chain with retries, cached, not validated."""

from __future__ import annotations

import array
import base64
import sys
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import orjson
from starlette.responses import Response

from .answer import Answer
from .auth import Caller
from .cache import cache_key, decode_entry, encode_entry
from .chain import Chain
from .context import cache_mode
from .errors import ProxyError
from .outcome import decide
from .respond import AnswerMeta
from .services import Services
from .settings import Deployment, ModelAlias
from .upstream import Upstream, UpstreamResult
from .wire import EmbeddingRequest

__all__ = ["encoded", "handle_embeddings"]


async def handle_embeddings(
    services: Services,
    caller: Caller,
    request: EmbeddingRequest,
    alias: ModelAlias,
    headers: Mapping[str, str],
) -> Answer:
    """Forward along the alias's chain (proxy.chain: the same walk as chat), cache the answer."""
    settings = services.runtime.settings
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
    meta = AnswerMeta(policy="", cache=mode.label, cache_key=key)
    if mode.read:
        hit = decode_entry(await services.cache.get(key))
        if hit is not None:
            meta.cache, meta.deployment = "hit", hit.deployment
            return Answer(_respond(hit.response, meta), meta)
    chain = Chain(
        request.model,
        alias.deployments,
        resilience=services.resilience,
        events=services.metrics.events(""),
        kind="emb",  # the mock provider counts embedding calls apart from chat ones
    )
    try:
        for step in chain.steps():
            result = await step.call(partial(_embed, services.upstream, request.body))
            if result is not None:
                chain.attempts.add(result)
                break
        else:
            raise chain.final_failure()
    except ProxyError as exc:
        chain.attempts.fill(meta)
        return Answer.failed(exc, meta)
    chain.attempts.fill(meta)
    meta.deployment, meta.outcome = step.dep.model, decide(fallback=step.index > 0)
    completion = encoded(result.completion, str(request.body.get("encoding_format") or "float"))
    if mode.write:
        entry = encode_entry(
            response=completion, deployment=step.dep.model, outcome="pass", repairs=(), created=time.time()
        )
        await services.cache.set(key, entry, settings.cache.ttl)
    return Answer(_respond(completion, meta), meta)


async def _embed(
    upstream: Upstream, body: Mapping[str, Any], dep: Deployment, key: str, timeout: float
) -> UpstreamResult:
    return await upstream.embed(dep, body, key=key, timeout=timeout)


def encoded(response: Mapping[str, Any], encoding: str) -> dict[str, Any]:
    """`response` with every vector in the client's `encoding_format`, whatever the upstream sent:
    `base64` is float32 little-endian as OpenAI packs it, `float` a list of numbers."""
    data = []
    for item in response.get("data") or ():
        vector = item.get("embedding") if isinstance(item, Mapping) else None
        if encoding == "base64" and isinstance(vector, list):
            packed = array.array("f", vector)
            if sys.byteorder == "big":
                packed.byteswap()
            item = {**item, "embedding": base64.b64encode(packed.tobytes()).decode()}
        elif encoding != "base64" and isinstance(vector, str):
            unpacked = array.array("f", base64.b64decode(vector))
            if sys.byteorder == "big":
                unpacked.byteswap()
            item = {**item, "embedding": unpacked.tolist()}
        data.append(item)
    return {**response, "data": data}


def _respond(body: Mapping[str, object], meta: AnswerMeta) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=meta.headers())
