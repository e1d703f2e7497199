"""The request path, top to bottom: policy -> cache -> ladder (upstream, validate, repair, re-ask,
fall back) -> store -> respond. Each step lives in its own module; this one only orchestrates."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from validators import RequestContext

from .audit import AuditEvents
from .auth import Caller
from .cache import CachedAnswer, cache_key, decode_entry, encode_entry
from .cache.entry import STORABLE_OUTCOMES
from .errors import ModelNotFound, OutputValidationFailed, PermissionDenied, ProxyError
from .ladder import Attempts, Verdict, run_ladder
from .passthrough import passthrough_response
from .policy import Policy
from .respond import AnswerMeta, json_response, stream_response, waiting_stream
from .services import Runtime, Services
from .settings import ModelAlias
from .wire import ChatRequest

__all__ = ["CacheMode", "cache_mode", "handle_chat", "resolve_policy"]


@dataclass(frozen=True)
class CacheMode:
    read: bool
    write: bool
    label: str  # the x-guardproxy-cache value on a miss


_BYPASS = CacheMode(False, False, "bypass")
_REFRESH = CacheMode(False, True, "refresh")
_READ_WRITE = CacheMode(True, True, "miss")


def cache_mode(cache_control: str, *, enabled: bool) -> CacheMode:
    """What `Cache-Control` and the config allow for this request."""
    if not enabled:
        return _BYPASS
    if not cache_control:
        return _READ_WRITE
    directives = {d.strip().lower() for d in cache_control.split(",")}
    if "no-store" in directives:
        return _BYPASS
    if "no-cache" in directives:
        return _REFRESH
    return _READ_WRITE


def resolve_policy(runtime: Runtime, alias: ModelAlias, override: str | None, caller: Caller) -> Policy:
    """The alias's policy, the default one, or the header's when the caller may choose."""
    if override:
        caller.check_override()
        policy = runtime.policies.get(override)
        if policy is None:
            raise PermissionDenied(
                f"Unknown policy '{override}' in x-guardproxy-policy.", param="x-guardproxy-policy"
            )
        return policy
    return runtime.policies[alias.policy or runtime.settings.default_policy]


async def handle_chat(
    services: Services,
    runtime: Runtime,
    caller: Caller,
    chat: ChatRequest,
    headers: Mapping[str, str],
    *,
    request_id: str = "",
) -> tuple[Response, AnswerMeta | None]:
    """Answer one chat completion request."""
    alias = runtime.settings.models.get(chat.model)
    if alias is None:
        raise ModelNotFound(
            f"The model '{chat.model}' does not exist; GET /v1/models lists the models.", param="model"
        )
    caller.check_alias(chat.model)
    policy = resolve_policy(runtime, alias, headers.get("x-guardproxy-policy"), caller)
    ctx = RequestContext(response_format=chat.response_format, tools=chat.tools)
    settings = runtime.settings
    mode = cache_mode(
        headers.get("cache-control", ""),
        enabled=settings.cache.backend != "none" and policy.spec.cache.enabled,
    )
    key = cache_key(
        request=chat.body,
        alias=chat.model,
        deployments=[d.model for d in alias.deployments],
        policy_name=policy.name,
        policy_hash=policy.content_hash,
        scope_key_hash=caller.key_hash if settings.cache.scope == "key" else None,
    )
    meta = AnswerMeta(policy=policy.name, cache=mode.label, cache_key=key)

    if mode.read:
        hit = decode_entry(await services.cache.get(key))
        if hit is not None:
            services.metrics.cache.labels("hit").inc()
            usage = hit.response.get("usage") or {}
            services.metrics.tokens_saved.labels(chat.model).inc(int(usage.get("total_tokens") or 0))
            return _replay(hit, meta, chat), meta
    services.metrics.cache.labels(mode.label).inc()

    ttl = policy.spec.cache.ttl if policy.spec.cache.ttl is not None else settings.cache.ttl
    attempts = Attempts()
    events = AuditEvents(
        services.audit,
        request_id=request_id,
        alias=chat.model,
        policy=policy.name,
        inner=services.metrics.events(policy.name),
    )

    async def produce() -> tuple[dict[str, Any], AnswerMeta]:
        try:
            verdict = await _answer(services, runtime, chat, alias, policy, ctx, attempts, events)
        except OutputValidationFailed as exc:
            events.rejected(exc.violations)
            raise
        _fill(meta, verdict, attempts)
        if mode.write and verdict.outcome in STORABLE_OUTCOMES:
            await _store(
                services, key, ttl, verdict.completion, verdict.deployment, verdict.outcome, verdict.repairs
            )
        return verdict.completion, meta

    async def produce_shared() -> tuple[dict[str, Any], AnswerMeta]:
        if not mode.read:
            return await produce()
        shared: object = await services.flights.run(
            key,
            produce,
            lookup=lambda: _lookup(services, key),  # type: ignore[arg-type, return-value]
            wait=min(5.0, settings.retry.deadline),
            lock_ttl=max(d.timeout for d in alias.deployments),
        )
        if isinstance(shared, CachedAnswer):  # another process produced it while we waited
            hit_meta = AnswerMeta(policy=policy.name, cache="hit", cache_key=key)
            _fill_from_entry(hit_meta, shared)
            return shared.response, hit_meta
        return shared  # type: ignore[return-value]

    try:
        if chat.stream and policy.spec.stream == "passthrough" and (chat.body.get("n") or 1) == 1:
            response = await _passthrough(
                services, runtime, chat, alias, policy, ctx, meta, attempts, mode, ttl, events
            )
            return response, meta
        if chat.stream:
            response = await waiting_stream(
                produce_shared(),
                include_usage=chat.include_usage,
                keepalive=settings.server.keepalive_seconds,
                error_response=ProxyError("The request failed.").body(),
                meta=meta,
            )
            return response, meta
        completion, final_meta = await produce_shared()
        return json_response(completion, final_meta), final_meta
    except ProxyError as exc:
        _fill(meta, None, attempts)
        exc.answer_meta = meta  # type: ignore[attr-defined]
        meta.outcome = "rejected" if exc.status_code == 422 else "error"
        exc.context_headers = meta.headers()
        raise


async def _answer(
    services: Services,
    runtime: Runtime,
    chat: ChatRequest,
    alias: ModelAlias,
    policy: Policy,
    ctx: RequestContext,
    attempts: Attempts,
    events: AuditEvents,
) -> Verdict:
    validators = policy.validators_for(runtime.registry, ctx)
    return await run_ladder(
        body=chat.body,
        alias=chat.model,
        chain=alias.deployments,
        policy=policy,
        validators=validators,
        ctx=ctx,
        upstream=services.upstream,
        resilience=runtime.resilience,
        deadline=runtime.resilience.deadline(),
        attempts=attempts,
        stream_upstream=chat.stream,
        events=events,
    )


async def _passthrough(
    services: Services,
    runtime: Runtime,
    chat: ChatRequest,
    alias: ModelAlias,
    policy: Policy,
    ctx: RequestContext,
    meta: AnswerMeta,
    attempts: Attempts,
    mode: CacheMode,
    ttl: float,
    events: AuditEvents,
) -> Response:
    async def store(completion: dict[str, Any], outcome: str) -> None:
        if mode.write:
            await _store(services, meta.cache_key, ttl, completion, meta.deployment, outcome, meta.repairs)

    return await passthrough_response(
        body=chat.body,
        alias=chat.model,
        chain=alias.deployments,
        validators=policy.validators_for(runtime.registry, ctx),
        ctx=ctx,
        upstream=services.upstream,
        resilience=runtime.resilience,
        deadline=runtime.resilience.deadline(),
        attempts=attempts,
        max_attempts=policy.spec.max_attempts,
        meta=meta,
        include_usage=chat.include_usage,
        store=store,
        monitor=policy.spec.mode == "monitor",
        allow_repair="repair" in policy.spec.on_fail,
        events=events,
    )


async def _store(
    services: Services,
    key: str,
    ttl: float,
    completion: dict[str, Any],
    deployment: str,
    outcome: str,
    repairs: Sequence[str],
) -> None:
    """Store a final answer under `key` and count the store (or the failed one)."""
    entry = encode_entry(
        response=completion, deployment=deployment, outcome=outcome, repairs=repairs, created=time.time()
    )
    stored = await services.cache.set(key, entry, ttl)
    services.metrics.cache.labels("store" if stored else "error").inc()


async def _lookup(services: Services, key: str) -> CachedAnswer | None:
    return decode_entry(await services.cache.get(key))


def _fill(meta: AnswerMeta, verdict: Verdict | None, attempts: Attempts) -> None:
    meta.attempts = attempts.calls
    meta.tokens = attempts.tokens
    meta.cost = attempts.cost
    if verdict is not None:
        meta.outcome = verdict.outcome
        meta.deployment = verdict.deployment
        meta.repairs = verdict.repairs


def _fill_from_entry(meta: AnswerMeta, entry: CachedAnswer) -> None:
    meta.outcome = entry.outcome
    meta.deployment = entry.deployment
    meta.repairs = tuple(entry.repairs)
    meta.attempts = 0
    meta.tokens = 0


def _replay(entry: CachedAnswer, meta: AnswerMeta, chat: ChatRequest) -> Response:
    meta.cache = "hit"
    _fill_from_entry(meta, entry)
    if chat.stream:
        return stream_response(entry.response, meta, include_usage=chat.include_usage)
    return json_response(entry.response, meta)
