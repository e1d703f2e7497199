"""`stream: passthrough`: chunks are forwarded as they arrive while the incremental validators hold back
only what a match could still span; whole-output validators report their verdict in the last chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response, StreamingResponse

from validators import Output, RequestContext, StreamGuard, Validator, Violation, check

from .errors import OutputValidationFailed, UpstreamFailure, UpstreamTransient
from .ladder import Attempts, _final_failure
from .resilience import Deadline, Resilience
from .respond import SSE_HEADERS, AnswerMeta
from .settings import Deployment
from .upstream import ChunkAssembler, Upstream
from .wire import SSE_DONE, sse

__all__ = ["Relay", "passthrough_response"]

Store = Callable[[dict[str, Any], str], Awaitable[None]]


@dataclass
class Relay:
    """Turns upstream chunks into client chunks through the stream guard."""

    guard: StreamGuard
    assembler: ChunkAssembler = field(default_factory=ChunkAssembler)
    released: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    redacted: bool = False
    stopped: bool = False
    finish_reason: str | None = None
    template: dict[str, Any] = field(default_factory=dict)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **self.template,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _feed(self, step: Any) -> str:
        self.violations.extend(step.violations)
        self.redacted = self.redacted or bool(step.violations and not step.stop)
        if step.stop:
            self.stopped = True
            return ""
        if step.release:
            self.released.append(step.release)
        return str(step.release or "")

    def relay(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The client chunks to send now for one upstream chunk."""
        self.assembler.add(chunk)
        if not self.template:
            self.template = {k: chunk.get(k) for k in ("id", "object", "created", "model")}
            self.template["object"] = "chat.completion.chunk"
        out: list[dict[str, Any]] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            new: dict[str, Any] = {k: v for k, v in delta.items() if k in ("role", "refusal")}
            if delta.get("content"):
                text = self._feed(self.guard.feed(delta["content"]))
                if self.stopped:
                    return out
                if text:
                    new["content"] = text
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if new:
                out.append(self._chunk(new))
        return out

    def close(self) -> list[dict[str, Any]]:
        """The held-back tail, the tool calls (validated at the end) and the finish chunk."""
        out: list[dict[str, Any]] = []
        text = self._feed(self.guard.finish())
        if self.stopped:
            return out
        if text:
            out.append(self._chunk({"content": text}))
        message = self.assembler.completion()["choices"][0]["message"] if self.assembler.finished else {}
        for i, call in enumerate(message.get("tool_calls") or ()):
            out.append(self._chunk({"tool_calls": [{"index": i, **call}]}))
        out.append(self._chunk({}, self.finish_reason or "stop"))
        return out

    def output(self) -> Output:
        calls = self.assembler.completion()["choices"][0]["message"].get("tool_calls") or ()
        return Output(text="".join(self.released), tool_calls=tuple(calls))


async def _open(
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
) -> tuple[Deployment, AsyncIterator[dict[str, Any]], Relay, list[dict[str, Any]], bool]:
    """Retry and fall back until a stream yields something to send; nothing has reached the client yet."""
    failures: list[UpstreamFailure] = []
    for index, dep in enumerate(chain):
        key = f"{alias}#{index}"

        async def attempt(remaining: float, dep: Deployment = dep, key: str = key) -> Any:
            attempts.calls += 1
            stream = upstream.stream(dep, body, key=key, timeout=min(dep.timeout, remaining))
            relay = Relay(StreamGuard(validators, ctx))
            pending: list[dict[str, Any]] = []
            try:
                while not any("content" in c["choices"][0]["delta"] for c in pending) and not relay.stopped:
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        return dep, stream, relay, pending, True
                    pending.extend(relay.relay(chunk))
            except BaseException:
                await stream.aclose()  # type: ignore[attr-defined]
                raise
            return dep, stream, relay, pending, False

        try:
            opened = await resilience.call(
                attempt, deadline=deadline, may_attempt=lambda: attempts.calls < max_attempts
            )
        except UpstreamFailure as exc:
            resilience.cooldowns.failure(key)
            failures.append(exc)
            if not exc.fallback or attempts.calls >= max_attempts:
                break
            continue
        resilience.cooldowns.success(key)
        return opened  # type: ignore[no-any-return]
    raise _final_failure(failures, deadline)


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
) -> Response:
    """Open the upstream stream (retrying before the first byte), then relay it to the client."""
    dep, stream, relay, pending, ended = await _open(
        body, alias, chain, validators, ctx, upstream, resilience, deadline, attempts, max_attempts
    )
    meta.deployment = dep.model
    meta.attempts = attempts.calls
    meta.outcome = "streaming"

    def violation_event() -> bytes:
        error = OutputValidationFailed(
            "The model's output violated the policy mid-stream; the stream was ended.",
            [v.to_dict() for v in relay.violations],
        )
        return sse(error.body())

    async def events() -> AsyncIterator[bytes]:
        try:
            if relay.stopped:
                yield violation_event()
                return
            for chunk in pending:
                yield sse(chunk)
            if not ended:
                async for upstream_chunk in stream:
                    for chunk in relay.relay(upstream_chunk):
                        yield sse(chunk)
                    if relay.stopped:
                        yield violation_event()
                        return
            if relay.finish_reason is None:
                yield sse(
                    UpstreamTransient("The provider's stream ended before the answer was complete.").body()
                )
                return
            for chunk in relay.close():
                yield sse(chunk)
            if relay.stopped:
                yield violation_event()
                return
            whole = check(validators, relay.output(), ctx)
            outcome = "flagged" if whole else ("redacted" if relay.redacted else "pass")
            usage = relay.assembler.usage
            verdict = {
                "outcome": outcome,
                "violations": [v.to_dict() for v in whole],
                "attempts": attempts.calls,
            }
            last = {**relay.template, "choices": [], "guardproxy": verdict}
            if include_usage:
                last["usage"] = usage
            yield sse(last)
            yield SSE_DONE
            meta.outcome = outcome
            meta.tokens = attempts.tokens + int((usage or {}).get("total_tokens") or 0)
            if not whole:
                completion = relay.assembler.completion()
                completion["choices"][0]["message"]["content"] = "".join(relay.released) or None
                await store(completion, outcome)
        except UpstreamFailure as exc:
            yield sse(exc.body())
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={**SSE_HEADERS, **meta.headers()}
    )
