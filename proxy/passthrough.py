"""`stream: passthrough`: chunks are forwarded as they arrive while the incremental validators hold back
only what a match could still span; tool calls (held until the end) and whole-output validators are
settled when the upstream stream ends, and the verdict travels in the last chunk."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response, StreamingResponse

from validators import RequestContext, StreamGuard, Validator, Violation

from .cache.entry import STORABLE_OUTCOMES
from .errors import OutputValidationFailed, ProxyError, UpstreamFailure, UpstreamTransient
from .judge import Judgement
from .ladder import Attempts, LadderEvents, NoEvents
from .relay import Relay, settle, stream_view
from .resilience import Deadline, Resilience
from .respond import SSE_HEADERS, AnswerMeta
from .settings import Deployment
from .upstream import Upstream
from .wire import SSE_DONE, sse

__all__ = ["passthrough_response"]

log = logging.getLogger("guardproxy")
Store = Callable[[dict[str, Any], str], Awaitable[None]]


def _rejection(violations: Sequence[Violation], *, mid_stream: bool) -> OutputValidationFailed:
    where = "mid-stream; the stream was ended" if mid_stream else "before any of it was sent"
    return OutputValidationFailed(
        f"The model's output violated the policy {where}: " + "; ".join(v.message for v in violations[:3]),
        [v.to_dict() for v in violations],
    )


@dataclass
class _Opened:
    index: int
    dep: Deployment
    stream: AsyncIterator[dict[str, Any]]
    relay: Relay
    pending: list[dict[str, Any]]
    ended: bool


async def _open(
    body: Mapping[str, Any],
    alias: str,
    chain: Sequence[Deployment],
    make_relay: Callable[[], Relay],
    upstream: Upstream,
    resilience: Resilience,
    deadline: Deadline,
    attempts: Attempts,
    max_attempts: int,
    events: LadderEvents,
) -> _Opened:
    """Retry and fall back until a stream yields something to send; nothing has reached the client yet."""
    failures: list[UpstreamFailure] = []
    for index, dep in enumerate(chain):
        key = f"{alias}#{index}"
        if not resilience.cooldowns.available(key):
            continue

        async def attempt(
            remaining: float, index: int = index, dep: Deployment = dep, key: str = key
        ) -> _Opened:
            attempts.calls += 1
            stream = upstream.stream(dep, body, key=key, timeout=min(dep.timeout, remaining))
            relay = make_relay()
            pending: list[dict[str, Any]] = []
            try:
                while not any("content" in c["choices"][0]["delta"] for c in pending) and not relay.stopped:
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        if relay.finish_reason is None:
                            raise UpstreamTransient(
                                "The provider's stream ended before the answer was complete."
                            ) from None
                        return _Opened(index, dep, stream, relay, pending, True)
                    pending.extend(relay.relay(chunk))
            except UpstreamFailure as exc:
                events.upstream_call(dep.model, exc.code or "error")
                await stream.aclose()  # type: ignore[attr-defined]
                raise
            except BaseException:
                await stream.aclose()  # type: ignore[attr-defined]
                raise
            return _Opened(index, dep, stream, relay, pending, False)

        def on_retry(exc: UpstreamFailure, model: str = dep.model) -> None:
            events.retry(model, exc)

        try:
            opened = await resilience.call(
                attempt,
                deadline=deadline,
                may_attempt=lambda: attempts.calls < max_attempts,
                on_retry=on_retry,
            )
        except UpstreamFailure as exc:
            resilience.cooldowns.failure(key, exc)
            failures.append(exc)
            if not exc.fallback or attempts.calls >= max_attempts:
                break
            continue
        resilience.cooldowns.success(key)
        return opened
    raise resilience.final_failure(failures, deadline, [f"{alias}#{i}" for i in range(len(chain))])


@dataclass
class _Ending:
    """What a finished upstream stream turns into: the last events, and the answer to store if valid."""

    events: list[bytes]
    rejection: OutputValidationFailed | None = None
    outcome: str = "rejected"
    completion: dict[str, Any] | None = None
    repairs: tuple[str, ...] = ()


async def passthrough_response(
    *,
    body: Mapping[str, Any],
    alias: str,
    chain: Sequence[Deployment],
    validators: Sequence[Validator],
    ctx: RequestContext,
    upstream: Upstream,
    resilience: Resilience,
    deadline: Deadline,
    attempts: Attempts,
    max_attempts: int,
    meta: AnswerMeta,
    include_usage: bool,
    store: Store,
    monitor: bool = False,
    allow_repair: bool = True,
    events: LadderEvents | None = None,
) -> Response:
    """Open the upstream stream (retrying before the first byte), then relay it to the client.

    A violation or a failed verdict found before anything was sent is raised (422 / the upstream error);
    after that it ends the stream with one error event and no `[DONE]`.
    """
    sink: LadderEvents = events or NoEvents()
    view = stream_view(validators, monitor=monitor)
    opened = await _open(
        body,
        alias,
        chain,
        lambda: Relay(StreamGuard(view, ctx), include_usage),
        upstream,
        resilience,
        deadline,
        attempts,
        max_attempts,
        sink,
    )
    relay, stream, dep = opened.relay, opened.stream, opened.dep
    meta.deployment, meta.attempts, meta.outcome = dep.model, attempts.calls, "streaming"

    def report(violations: Sequence[Violation]) -> None:
        if violations:
            sink.step("violation", dep.model, Judgement({}, violations=list(violations)))

    def ending(sent: bool) -> _Ending:
        tail = [sse(c) for c in relay.tail()]
        if relay.stopped:
            report(relay.violations)
            return _Ending([], _rejection(relay.violations, mid_stream=sent))
        settled = settle(relay, view, ctx, allow_repair=allow_repair, fallback=opened.index > 0)
        report(settled.reported)
        verdict = {
            "outcome": settled.outcome,
            "violations": [v.to_dict() for v in settled.reported],
            "attempts": attempts.calls,
        }
        last = {**relay.template, "choices": [], "guardproxy": verdict}
        if settled.blocking:
            return _Ending([*tail, sse(last)], _rejection(settled.blocking, mid_stream=sent))
        out = [*tail]
        for i, call in enumerate(settled.tool_calls):
            out.append(sse(relay.chunk({"tool_calls": [{"index": i, **call}]})))
        out.append(sse(relay.chunk({}, relay.finish_reason)))
        if include_usage:
            last["usage"] = relay.assembler.usage
        completion = relay.assembler.completion()
        message = completion["choices"][0]["message"]
        message["content"] = relay.text or None
        if settled.tool_calls:
            message["tool_calls"] = [dict(c) for c in settled.tool_calls]
        return _Ending([*out, sse(last), SSE_DONE], None, settled.outcome, completion, settled.repairs)

    early: _Ending | None = None
    if relay.stopped:
        report(relay.violations)
        early = _Ending([], _rejection(relay.violations, mid_stream=False))
    elif opened.ended:
        early = ending(sent=False)
    if early is not None and early.rejection is not None:  # nothing was sent yet: a plain 422
        sink.upstream_call(dep.model, "ok")
        await stream.aclose()  # type: ignore[attr-defined]
        raise early.rejection

    async def events_() -> AsyncIterator[bytes]:
        result = "cancelled"  # the client left before the end
        try:
            for chunk in opened.pending:
                yield sse(chunk)
            if not opened.ended:
                async for upstream_chunk in stream:
                    for chunk in relay.relay(upstream_chunk):
                        yield sse(chunk)
                    if relay.stopped:
                        break
                if not relay.stopped and relay.finish_reason is None:
                    raise UpstreamTransient("The provider's stream ended before the answer was complete.")
            result = "ok"
            end = early or ending(sent=True)
            meta.outcome, meta.repairs = end.outcome, end.repairs
            if end.completion is not None and end.outcome in STORABLE_OUTCOMES:
                await _store(store, end)  # complete and valid: stored before the client sees [DONE]
            for event in end.events:
                yield event
            if end.rejection is not None:
                yield sse(end.rejection.body())
                return
        except UpstreamFailure as exc:
            result = exc.code or "error"
            yield sse(exc.body())
        except Exception:
            result = "error"
            log.exception("passthrough stream failed")
            yield sse(ProxyError("guardproxy hit an internal error; the stream was ended.").body())
        finally:
            sink.upstream_call(dep.model, result)
            await stream.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(
        events_(), media_type="text/event-stream", headers={**SSE_HEADERS, **meta.headers()}
    )


async def _store(store: Store, end: _Ending) -> None:
    try:
        await store(end.completion or {}, end.outcome)
    except Exception:  # a cache that cannot store must not break a finished answer
        log.exception("storing a streamed answer failed")
