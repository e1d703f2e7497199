"""The escalation ladder: call a deployment, judge, repair, re-ask, fall back, reject."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from validators import Violation, build_reask

from .chain import Attempts, Chain, ChainEvents, NoEvents, Step
from .judge import Judgement, judge_async
from .outcome import Outcome, decide, rejection
from .settings import Deployment
from .upstream import ChunkAssembler, UpstreamResult

if TYPE_CHECKING:
    from .context import ChatContext

__all__ = ["Attempts", "LadderEvents", "NoEvents", "Verdict", "run_ladder"]

LadderEvents = ChainEvents  # the name the ladder's listeners know


@dataclass(frozen=True)
class Verdict:
    """The answer the ladder settled on."""

    completion: dict[str, Any]
    outcome: Outcome
    deployment: str
    repairs: tuple[str, ...] = ()
    violations: tuple[Violation, ...] = ()  # what the judgement found in it: repaired and flagged


class _Ladder:
    """One request's climb: the chain walk plus what the policy allows on a violation."""

    def __init__(self, ctx: ChatContext, chain: Chain) -> None:
        self.ctx, self.chain = ctx, chain
        self.spec = ctx.policy.spec
        self.violations: list[Violation] = []

    def within_budget(self) -> bool:
        limit = self.spec.budget.max_total_tokens
        return limit is None or self.chain.attempts.tokens < limit

    def may_go_on(self) -> bool:
        """Before the next deployment: a validation fallback also needs token budget left."""
        return not self.violations or self.within_budget()

    async def call(self, step: Step, body: Mapping[str, Any]) -> UpstreamResult | None:
        upstream, streamed, native = self.ctx.services.upstream, self.ctx.chat.stream, self.ctx.native

        async def attempt(dep: Deployment, key: str, timeout: float) -> UpstreamResult:
            if native is not None:
                native.items = []  # the built-in items of the answer accepted: its last call's
            if native is not None and native.serves(dep):  # `api: responses`: never streamed (buffer mode)
                response = await upstream.respond(dep, native.request(body), key=key, timeout=timeout)
                result = upstream.result(dep, native.completion(response))
            elif streamed:
                result = await _streamed(self.ctx, dep, body, key, timeout)
            else:
                result = await upstream.complete(dep, body, key=key, timeout=timeout)
            self.chain.attempts.add(result)
            return result

        return await step.call(attempt)

    async def climb(self, step: Step) -> Verdict | None:
        """Call, judge and re-ask on one deployment; a Verdict, or None to go on down the chain."""
        body, events, model = self.ctx.chat.body, self.chain.events, step.dep.model
        request: Mapping[str, Any] = body
        reasks = 0
        while (result := await self.call(step, request)) is not None:
            judgement = await judge_async(
                result.completion,
                self.ctx.validators,
                self.ctx.judge,
                allow_repair="repair" in self.spec.on_fail,
            )
            if not judgement.ok or judgement.flagged:
                events.step("violation", model, judgement)
            if judgement.ok or self.spec.mode == "monitor":
                return _accept(judgement, step, reasks, events)
            self.violations = judgement.violations + judgement.rejected
            if judgement.rejected:
                raise rejection(self.violations, how=_AFTER_ALL)
            if not self._may_reask(reasks, judgement):
                return None
            reasks += 1
            events.step("reask", model, judgement)
            invalid = judgement.invalid_output
            assert invalid is not None  # _may_reask checked it
            request = {**body, "messages": build_reask(body["messages"], invalid, judgement.violations)}
        return None

    def _may_reask(self, reasks: int, judgement: Judgement) -> bool:
        return (
            "reask" in self.spec.on_fail
            and reasks < self.spec.reask.max
            and self.chain.may_attempt()
            and self.within_budget()
            and judgement.invalid_output is not None
        )


_AFTER_ALL = "failed the policy after every allowed repair, re-ask and fallback"


def _accept(judgement: Judgement, step: Step, reasks: int, events: ChainEvents) -> Verdict:
    if not judgement.ok:  # monitor mode: what would have blocked is flagged
        judgement.flagged.extend(judgement.violations + judgement.rejected)
    if judgement.repairs:
        events.step("repair", step.dep.model, judgement)
    if judgement.redactions:
        events.step("redaction", step.dep.model, judgement)
    outcome = decide(
        flagged=bool(judgement.flagged),
        fallback=step.index > 0,
        reasked=reasks > 0,
        repaired=bool(judgement.repairs),
        redacted=bool(judgement.redactions),
    )
    found = (*judgement.repaired, *judgement.flagged)
    return Verdict(judgement.completion, outcome, step.dep.model, tuple(judgement.repairs), found)


async def _streamed(
    ctx: ChatContext, dep: Deployment, body: Mapping[str, Any], key: str, timeout: float
) -> UpstreamResult:
    """A buffered stream: the upstream is asked to stream, the chunks are assembled into one answer."""
    assembler = ChunkAssembler()
    upstream = ctx.services.upstream
    async for _ in upstream.stream(dep, body, key=key, timeout=timeout, into=assembler):
        pass  # the stream fills the assembler, read by read; one cut before every finish_reason raises
    return upstream.result(dep, assembler.completion())


async def run_ladder(ctx: ChatContext, chain: Chain) -> Verdict:
    """Walk the chain until an answer passes the policy; raise the contract's error otherwise."""
    ladder = _Ladder(ctx, chain)
    for step in chain.steps(ladder.may_go_on):
        verdict = await ladder.climb(step)
        if verdict is not None:
            return verdict
        if ladder.violations and "fallback" not in ladder.spec.on_fail:
            break
    if ladder.violations:
        raise rejection(ladder.violations, how=_AFTER_ALL)
    raise chain.final_failure()
