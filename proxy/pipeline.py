"""The request path, top to bottom: policy -> cache -> ladder (upstream, validate, repair, re-ask,
fall back) -> store -> respond. Each step lives in its own module; this one only orchestrates, and
hands back an `Answer` whose metadata is final once its body has been sent (proxy.answer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from .answer import Answer, Ledger
from .audit import AuditEvents
from .auth import Caller
from .cache import CachedAnswer, cache_key, decode_entry
from .cache.entry import STORABLE_OUTCOMES
from .context import CacheMode, ChatContext, cache_mode
from .errors import ModelNotFound, OutputValidationFailed, PermissionDenied, ProxyError
from .judge import request_context
from .ladder import Verdict, run_ladder
from .passthrough import passthrough_response
from .policy import Policy
from .respond import AnswerMeta, json_response, stream_response, waiting_stream
from .services import Runtime, Services
from .settings import ModelAlias
from .wire import ChatRequest

if TYPE_CHECKING:
    from .responses.native import NativeRequest

__all__ = ["CacheMode", "ChatCall", "Render", "cache_mode", "handle_chat", "resolve_policy"]

# a complete (non-streamed) completion and its meta -> the HTTP answer: chat's JSON, or another route's
Render = Callable[[Mapping[str, Any], AnswerMeta], Response]


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


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One admitted chat request, as its route hands it to the pipeline.

    `runtime`: the config the request started under (a reload while it runs does not change it).
    `ledger`: the request's accounting, for its ids (ours and the client's).
    `native`: a /v1/responses request's own body, for the alias's `api: responses` deployments.
    """

    runtime: Runtime
    caller: Caller
    chat: ChatRequest
    headers: Mapping[str, str]
    ledger: Ledger
    native: NativeRequest | None = None


async def handle_chat(services: Services, call: ChatCall, render: Render = json_response) -> Answer:
    """Answer one chat completion request: 404/403 are raised, every later failure is an error Answer.

    `render`: how a complete non-streamed answer is sent (/v1/responses renders its Response object
    straight from the completion, never from chat's JSON)."""
    ctx = _context(services, call)
    try:
        return await _answer(ctx, render)
    except ProxyError as exc:
        ctx.fill_attempts()
        return Answer.failed(exc, ctx.meta)


def _context(services: Services, call: ChatCall) -> ChatContext:
    """The request's alias, policy, validators, cache mode and key (404 / 403 raised here)."""
    runtime, caller, chat, headers, native = call.runtime, call.caller, call.chat, call.headers, call.native
    alias = runtime.settings.models.get(chat.model)
    if alias is None:
        raise ModelNotFound(
            f"The model '{chat.model}' does not exist; GET /v1/models lists the models.", param="model"
        )
    caller.check_alias(chat.model)
    policy = resolve_policy(runtime, alias, headers.get("x-guardproxy-policy"), caller)
    settings = runtime.settings
    judge = request_context(
        chat.response_format,
        chat.tools,
        schemas=runtime.registry.schema_cache,
        validation_ms=settings.limits.validation_ms,
        tool_choice=chat.body.get("tool_choice"),
    )
    # a built-in tool's items (a web search) are not in the completion a cache entry keeps
    builtin = native is not None and native.builtin
    mode = cache_mode(
        headers.get("cache-control", ""),
        enabled=settings.cache.backend != "none" and policy.spec.cache.enabled and not builtin,
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
    validators = policy.validators_for(runtime.registry, judge)
    request_id = call.ledger.request_id
    events = AuditEvents(
        services.audit,
        request_id=request_id,
        alias=chat.model,
        policy=policy.name,
        inner=services.metrics.events(policy.name),
        client_request_id=call.ledger.client_request_id,
    )
    return ChatContext(
        services, runtime, caller, chat, alias, policy, judge, validators, mode, meta, events, request_id,
        native=native,
    )  # fmt: skip


async def _answer(ctx: ChatContext, render: Render) -> Answer:
    chat, services = ctx.chat, ctx.services
    if ctx.cache.read:
        hit = decode_entry(await services.cache.get(ctx.key))
        if hit is not None:
            services.metrics.cache.labels("hit").inc()
            usage = hit.response.get("usage") or {}
            services.metrics.tokens_saved.labels(chat.model).inc(int(usage.get("total_tokens") or 0))
            return _replay(ctx, hit, render)
    services.metrics.cache.labels(ctx.cache.label).inc()
    passthrough = ctx.policy.spec.stream == "passthrough" and ctx.native is None  # native: buffer mode
    if chat.stream and passthrough and (chat.body.get("n") or 1) == 1:
        return Answer(await passthrough_response(ctx), ctx.meta)
    if chat.stream:
        keepalive = ctx.runtime.settings.server.keepalive_seconds
        response = await waiting_stream(
            _shared(ctx), ctx.meta, include_usage=chat.include_usage, keepalive=keepalive
        )
        return Answer(response, ctx.meta)
    completion = await _shared(ctx)
    return Answer(render(completion, ctx.meta), ctx.meta)


async def _shared(ctx: ChatContext) -> dict[str, Any]:
    """The answer, made once among concurrent identical requests (in this process and across); the meta
    says how it was made, and what this request's own upstream calls cost."""
    try:
        if not ctx.cache.read:
            produced = await _produce(ctx)
        else:
            produced = await ctx.services.flights.run(
                ctx.key,
                lambda: _produce(ctx),
                lookup=lambda: _lookup(ctx),
                wait=min(5.0, ctx.runtime.settings.retry.deadline),
                lock_ttl=_lock_ttl(ctx),
            )
    finally:
        ctx.fill_attempts()
    ctx.meta.outcome, ctx.meta.deployment = produced.outcome, produced.deployment
    ctx.meta.repairs = tuple(produced.repairs)
    if ctx.chain is None and produced.created:  # another process made and stored it while we waited
        ctx.meta.cache = "hit"
    return produced.response


def _lock_ttl(ctx: ChatContext) -> float:
    """How long the cross-process lock holds: `cache.lock_ttl`, but at least one attempt's timeout."""
    return max(ctx.runtime.settings.cache.lock_ttl, max(d.timeout for d in ctx.alias.deployments))


async def _produce(ctx: ChatContext) -> CachedAnswer:
    """Climb the ladder, let the record store see the verdict, store what may be cached."""
    verdict: Verdict | None = None
    rejected: list[Any] = []
    try:
        verdict = await run_ladder(ctx, ctx.new_chain())
    except OutputValidationFailed as exc:
        ctx.events.rejected(exc.violations)
        rejected = exc.violations
        raise
    finally:  # the answer is settled: the record store decides whether to keep it (proxy.records)
        if ctx.services.records is not None:
            ctx.services.records.settle(
                ctx.runtime.settings, ctx.policy, ctx.caller, request_id=ctx.request_id, alias=ctx.chat.model,
                body=ctx.chat.body, cache_key=ctx.key, verdict=verdict, events=ctx.events, rejected=rejected,
            )  # fmt: skip
    ctx.meta.violations = tuple(v.to_dict() for v in verdict.violations)  # a committed stream's verdict
    if verdict.outcome in STORABLE_OUTCOMES:
        await ctx.store(
            verdict.completion,
            outcome=verdict.outcome,
            deployment=verdict.deployment,
            repairs=verdict.repairs,
        )
    # created 0: made by this request's flight just now (a stored entry always has its time)
    return CachedAnswer(verdict.completion, verdict.deployment, verdict.outcome, verdict.repairs, 0.0)


async def _lookup(ctx: ChatContext) -> CachedAnswer | None:
    return decode_entry(await ctx.services.cache.get(ctx.key))


def _replay(ctx: ChatContext, entry: CachedAnswer, render: Render) -> Answer:
    meta = ctx.meta
    meta.cache, meta.outcome, meta.deployment = "hit", entry.outcome, entry.deployment
    meta.repairs, meta.attempts, meta.tokens = tuple(entry.repairs), 0, 0
    if ctx.chat.stream:
        return Answer(stream_response(entry.response, meta, include_usage=ctx.chat.include_usage), meta)
    return Answer(render(entry.response, meta), meta)
