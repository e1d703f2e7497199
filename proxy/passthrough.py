"""`stream: passthrough`: chunks are forwarded as they arrive while the incremental validators hold back
only what a match could still span; tool calls (held until the end) and whole-output validators are
settled when the upstream stream ends, and the verdict travels in the last chunk."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from validators import StreamGuard, Violation

from .cache.entry import STORABLE_OUTCOMES
from .chain import Chain, Step
from .errors import OutputValidationFailed, ProxyError, UpstreamFailure, UpstreamTimeout, UpstreamTransient
from .judge import Judgement
from .outcome import Outcome, rejection
from .relay import Relay, settle, stream_view
from .respond import SSE_HEADERS, EventStream
from .settings import Deployment
from .upstream import CUT, ChunkAssembler
from .wire import SSE_DONE, sse

if TYPE_CHECKING:
    from .context import ChatContext

__all__ = ["estimate_tokens", "passthrough_response"]

log = logging.getLogger("guardproxy")


def _rejection(violations: Sequence[Violation], *, mid_stream: bool) -> OutputValidationFailed:
    where = "mid-stream; the stream was ended" if mid_stream else "before any of it was sent"
    return rejection(violations, how=f"violated the policy {where}")


def estimate_tokens(body: Any, text: str) -> int:
    """About four characters a token, for a stream whose upstream sent no usage."""
    prompt = len(orjson.dumps(body.get("messages") or []))
    return (prompt + len(text)) // 4 + 1


@dataclass
class _Opened:
    step: Step
    stream: AsyncGenerator[list[dict[str, Any]], None]
    relay: Relay
    pending: list[dict[str, Any]]  # relayed before the commit: the first write
    rest: list[dict[str, Any]]  # read with the first text but not relayed yet (it goes out after the commit)
    ended: bool


@dataclass
class _Ending:
    """What a finished upstream stream turns into: the last events, and the answer to store if valid."""

    events: list[bytes]
    rejection: OutputValidationFailed | None = None
    outcome: str = Outcome.REJECTED
    completion: dict[str, Any] | None = None
    repairs: tuple[str, ...] = ()
    verdict: dict[str, Any] | None = None  # a rejection's verdict rides on its error event

    def error_event(self) -> bytes:
        assert self.rejection is not None
        body = self.rejection.body()
        if self.verdict is not None:
            body["error"]["guardproxy"] = self.verdict
        return sse(body)


async def _open(ctx: ChatContext, chain: Chain, make_relay: Callable[[ChunkAssembler], Relay]) -> _Opened:
    """Retry and fall back until a stream yields something to send; nothing has reached the client yet."""
    upstream, body = ctx.services.upstream, ctx.chat.body
    for step in chain.steps():

        async def attempt(dep: Deployment, key: str, timeout: float, step: Step = step) -> _Opened:
            limits = upstream.limits  # the whole stream and each gap; the first byte is due by `timeout`
            idle = min(dep.timeout, limits.stream_idle_timeout)
            assembler = ChunkAssembler()  # filled by the stream, read by the relay's verdict
            stream = upstream.stream(
                dep, body, key=key, timeout=limits.stream_max_seconds, into=assembler, idle=idle
            )
            try:
                async with upstream.deadlines.within(timeout):
                    relay, pending, rest, ended = await _first_content(stream, partial(make_relay, assembler))
            except TimeoutError:
                await stream.aclose()
                raise UpstreamTimeout("The provider sent no answer in time.") from None
            except BaseException:
                await stream.aclose()
                raise
            return _Opened(step, stream, relay, pending, rest, ended)

        opened = await step.call(attempt, settle_later=True)
        if opened is not None:
            return opened
    raise chain.final_failure()


async def _first_content(
    stream: AsyncIterator[list[dict[str, Any]]], make_relay: Callable[[], Relay]
) -> tuple[Relay, list[dict[str, Any]], list[dict[str, Any]], bool]:
    """Relay until there is text to send (or the guard stopped): the relay, the chunks to send, those read
    after the first text, and whether the stream ended on the way. The relay (its stream guard) is built
    once the request has gone out and the provider's first chunks are back: not on the way there."""
    batch = await anext(stream, None)
    if batch is None:
        raise UpstreamTransient(CUT)  # not reached: `Upstream.stream` raises first
    relay = make_relay()
    pending: list[dict[str, Any]] = []
    while (rest := _until_text(relay, batch, pending)) is None:
        batch = await anext(stream, None)
        if batch is None:  # ended, every choice finished (`Upstream.stream` raises for a cut one)
            return relay, pending, [], True
    return relay, pending, rest, False


def _until_text(
    relay: Relay, batch: list[dict[str, Any]], pending: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """Relay `batch` into `pending` up to its first chunk with text (or the guard's stop): the chunks
    after that one, or None when there was no text. The commit comes at the first text, however the
    provider's chunks were grouped into reads."""
    for i, chunk in enumerate(batch):
        out = relay.relay(chunk)
        pending.extend(out)
        if relay.stopped or any("content" in c["choices"][0]["delta"] for c in out):
            return batch[i + 1 :]
    return None


class _Passthrough:
    """One opened passthrough stream: relays it, settles the verdict at its end, fills the meta."""

    def __init__(self, ctx: ChatContext, chain: Chain, opened: _Opened, view: Sequence[Any]) -> None:
        self.ctx, self.chain, self.opened, self.view = ctx, chain, opened, view
        self.relay, self.dep = opened.relay, opened.step.dep
        self.charged = False

    def report(self, violations: Sequence[Violation]) -> None:
        if violations:
            self.chain.events.step("violation", self.dep.model, Judgement({}, violations=list(violations)))

    def charge(self) -> None:
        """Add the stream's usage to the request's attempts, once (an estimate when none was sent)."""
        if self.charged:
            return
        self.charged = True
        usage = self.relay.assembler.usage
        if usage:
            result = self.ctx.services.upstream.result(self.dep, {"usage": usage})
            self.chain.attempts.add(result)
        else:
            self.chain.attempts.add_usage(
                estimate_tokens(self.ctx.chat.body, self.relay.assembler.text()), None
            )
        self.chain.attempts.fill(self.ctx.meta)

    def early(self) -> _Ending | None:
        """The ending known before anything is sent (the guard stopped, or the whole stream is here)."""
        if self.relay.stopped:
            self.report(self.relay.violations)
            return _Ending([], _rejection(self.relay.violations, mid_stream=False))
        return self.ending(sent=False) if self.opened.ended else None

    def ending(self, sent: bool) -> _Ending:
        relay = self.relay
        tail = [sse(c) for c in relay.tail()]
        if relay.stopped:
            self.report(relay.violations)
            return _Ending([], _rejection(relay.violations, mid_stream=sent))
        settled = settle(
            relay,
            self.view,
            self.ctx.judge,
            allow_repair="repair" in self.ctx.policy.spec.on_fail,
            fallback=self.opened.step.index > 0,
        )
        self.report(settled.reported)
        self.charge()
        verdict = self._verdict(settled.outcome, settled.reported)
        if settled.blocking:
            rejected = _rejection(settled.blocking, mid_stream=sent)
            return _Ending(tail, rejected, verdict=verdict)
        last = {**relay.template, "choices": [], "guardproxy": verdict}
        out = [*tail]
        for i, call in enumerate(settled.tool_calls):
            out.append(sse(relay.chunk({"tool_calls": [{"index": i, **call}]})))
        finish = relay.chunk({}, relay.finish_reason)
        if self.ctx.chat.include_usage:  # OpenAI's one chunk with empty choices: it carries the verdict
            last["usage"] = relay.assembler.usage
            out.extend((sse(finish), sse(last)))
        else:  # no usage chunk: the verdict rides on the finish_reason chunk
            out.append(sse({**finish, "guardproxy": verdict}))
        completion = relay.assembler.completion()
        message = completion["choices"][0]["message"]
        message["content"] = relay.text or None
        if settled.tool_calls:
            message["tool_calls"] = [dict(c) for c in settled.tool_calls]
        return _Ending([*out, SSE_DONE], None, settled.outcome, completion, settled.repairs)

    def _verdict(self, outcome: str, reported: Sequence[Violation]) -> dict[str, Any]:
        verdict: dict[str, Any] = {
            "outcome": outcome,
            "violations": [v.to_dict() for v in reported],
            "attempts": self.chain.attempts.calls,
        }
        if self.relay.assembler.usage:  # the headers left before the usage was known: the verdict has it
            verdict["total_tokens"] = self.relay.assembler.usage.get("total_tokens")
            cost = self.ctx.services.upstream.prices.cost(self.dep, self.relay.assembler.usage)
            if cost is not None:
                verdict["cost"] = cost
        return verdict

    async def _relay_rest(self) -> AsyncGenerator[bytes, None]:
        first = [*self.opened.pending, *self.relay.relay_all(self.opened.rest)]
        if first:  # what was read before the commit goes out in one write
            yield b"".join(sse(chunk) for chunk in first)
        if self.opened.ended or self.relay.stopped:
            return
        async for batch in self.opened.stream:
            relayed = self.relay.relay_all(batch)
            if relayed:  # what arrived together goes out in one write
                yield b"".join(sse(chunk) for chunk in relayed) if len(relayed) > 1 else sse(relayed[0])
            if self.relay.stopped:
                return

    async def events(self, early: _Ending | None) -> AsyncGenerator[bytes, None]:
        meta = self.ctx.meta
        result, meta.outcome = "cancelled", Outcome.ERROR  # the client left before the end
        try:
            async for event in self._relay_rest():
                yield event
            result = "ok"
            end = early or self.ending(sent=True)
            meta.outcome, meta.repairs = end.outcome, end.repairs
            if end.completion is not None and end.outcome in STORABLE_OUTCOMES:
                await self._store(end)  # complete and valid: stored before the client sees [DONE]
            if end.events:  # the tail, the verdict and [DONE] in one write
                yield b"".join(end.events)
            if end.rejection is not None:
                meta.status = end.rejection.status_code
                self.ctx.events.rejected(end.rejection.violations, deployment=self.dep.model)
                yield end.error_event()
        except UpstreamFailure as exc:
            result, meta.status = exc.code or "error", exc.status_code
            yield sse(exc.body())
        except Exception:
            result, meta.status = "error", 500
            log.exception("passthrough stream failed")
            yield sse(ProxyError("guardproxy hit an internal error; the stream was ended.").body())
        finally:
            if result == "cancelled":
                meta.status = 499  # the client left before the end
            self.charge()
            self.opened.step.settle(result)
            await self.opened.stream.aclose()

    async def _store(self, end: _Ending) -> None:
        try:
            await self.ctx.store(
                end.completion or {}, outcome=end.outcome, deployment=self.dep.model, repairs=end.repairs
            )
        except Exception:  # a cache that cannot store must not break a finished answer
            log.exception("storing a streamed answer failed")


async def passthrough_response(ctx: ChatContext) -> Response:
    """Open the upstream stream (retrying before the first byte), then relay it to the client.

    A violation or a failed verdict found before anything was sent is raised (422 / the upstream error);
    after that it ends the stream with one error event and no `[DONE]`. The meta (tokens, outcome)
    is final once the stream has ended.
    """
    view = stream_view(ctx.validators, monitor=ctx.policy.spec.mode == "monitor")
    chain = ctx.new_chain()
    hold_cap = ctx.runtime.settings.limits.stream_hold_chars
    opened = await _open(
        ctx,
        chain,
        lambda assembler: Relay(
            StreamGuard(view, ctx.judge, hold_cap=hold_cap), ctx.chat.include_usage, assembler
        ),
    )
    meta = ctx.meta
    meta.deployment, meta.attempts, meta.outcome = (
        opened.step.dep.model,
        chain.attempts.calls,
        Outcome.STREAMING,
    )
    run = _Passthrough(ctx, chain, opened, view)
    early = run.early()
    if early is not None and early.rejection is not None:  # nothing was sent yet: a plain 422
        run.charge()
        opened.step.settle("ok")
        await opened.stream.aclose()
        raise early.rejection
    return EventStream(run.events(early), headers={**SSE_HEADERS, **meta.headers()})
