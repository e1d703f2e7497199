"""The escalation ladder: call a deployment, judge, repair, re-ask, fall back, reject."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from validators import RequestContext, Validator, Violation, build_reask

from .errors import OutputValidationFailed, UpstreamFailure, UpstreamTransient
from .judge import Judgement, judge
from .policy import Policy
from .resilience import Deadline, Resilience
from .settings import Deployment
from .upstream import ChunkAssembler, Upstream, UpstreamResult

__all__ = ["Attempts", "LadderEvents", "NoEvents", "Verdict", "run_ladder"]


class LadderEvents(Protocol):
    """What the ladder reports as it goes (metrics and audit log listen here)."""

    def upstream_call(self, deployment: str, result: str) -> None: ...
    def retry(self, deployment: str, error: UpstreamFailure) -> None: ...
    def step(self, kind: str, deployment: str, judgement: Judgement | None) -> None: ...


class NoEvents:
    """Events nobody listens to."""

    def upstream_call(self, deployment: str, result: str) -> None:
        return None

    def retry(self, deployment: str, error: UpstreamFailure) -> None:
        return None

    def step(self, kind: str, deployment: str, judgement: Judgement | None) -> None:
        return None


@dataclass
class Attempts:
    """What every upstream call of one request cost."""

    calls: int = 0
    tokens: int = 0
    cost: float | None = None

    def add(self, result: UpstreamResult) -> None:
        self.tokens += result.tokens
        if result.cost is not None:
            self.cost = (self.cost or 0.0) + result.cost


@dataclass(frozen=True)
class Verdict:
    """The answer the ladder settled on."""

    completion: dict[str, Any]
    outcome: str
    deployment: str
    repairs: tuple[str, ...] = ()
    violations: tuple[Violation, ...] = ()


@dataclass
class _Run:
    body: Mapping[str, Any]
    alias: str
    chain: Sequence[Deployment]
    policy: Policy
    validators: Sequence[Validator]
    ctx: RequestContext
    upstream: Upstream
    resilience: Resilience
    deadline: Deadline
    events: LadderEvents
    stream_upstream: bool
    attempts: Attempts = field(default_factory=Attempts)

    def may_attempt(self) -> bool:
        return self.attempts.calls < self.policy.spec.max_attempts

    def within_budget(self) -> bool:
        limit = self.policy.spec.budget.max_total_tokens
        return limit is None or self.attempts.tokens < limit

    async def call(self, index: int, dep: Deployment, body: Mapping[str, Any]) -> UpstreamResult:
        key = f"{self.alias}#{index}"

        async def attempt(remaining: float) -> UpstreamResult:
            self.attempts.calls += 1
            timeout = min(dep.timeout, remaining)
            try:
                result = await (
                    self._streamed(dep, body, key, timeout)
                    if self.stream_upstream
                    else self.upstream.complete(dep, body, key=key, timeout=timeout)
                )
            except UpstreamFailure as exc:
                self.events.upstream_call(dep.model, exc.code or "error")
                self.resilience.cooldowns.failure(key, exc)
                raise
            self.events.upstream_call(dep.model, "ok")
            self.resilience.cooldowns.success(key)
            self.attempts.add(result)
            return result

        return await self.resilience.call(
            attempt,
            deadline=self.deadline,
            may_attempt=self.may_attempt,
            on_retry=lambda exc: self.events.retry(dep.model, exc),
        )

    async def _streamed(
        self, dep: Deployment, body: Mapping[str, Any], key: str, timeout: float
    ) -> UpstreamResult:
        assembler = ChunkAssembler()
        async for chunk in self.upstream.stream(dep, body, key=key, timeout=timeout):
            assembler.add(chunk)
        if not assembler.finished:
            raise UpstreamTransient("The provider's stream ended before the answer was complete.")
        return self.upstream.result(dep, assembler.completion())


def _outcome(index: int, reasks: int, judgement: Judgement) -> str:
    if judgement.flagged:
        return "flagged"
    if index > 0:
        return "fallback"
    if reasks:
        return "reasked"
    if judgement.repairs:
        return "repaired"
    if judgement.redactions:
        return "redacted"
    return "pass"


async def run_ladder(
    *,
    body: Mapping[str, Any],
    alias: str,
    chain: Sequence[Deployment],
    policy: Policy,
    validators: Sequence[Validator],
    ctx: RequestContext,
    upstream: Upstream,
    resilience: Resilience,
    deadline: Deadline,
    attempts: Attempts,
    stream_upstream: bool = False,
    events: LadderEvents | None = None,
) -> Verdict:
    """Walk the chain until an answer passes the policy; raise the contract's error otherwise."""
    run = _Run(
        body,
        alias,
        chain,
        policy,
        validators,
        ctx,
        upstream,
        resilience,
        deadline,
        events or NoEvents(),
        stream_upstream,
        attempts,
    )
    steps = policy.spec.on_fail
    failures: list[UpstreamFailure] = []
    violations: list[Violation] = []
    for index, dep in enumerate(chain):
        if not run.may_attempt() or (index > 0 and violations and not run.within_budget()):
            break
        if not resilience.cooldowns.available(f"{alias}#{index}"):
            continue
        if index > 0:
            run.events.step("fallback", dep.model, None)
        request = body
        reasks = 0
        while True:
            try:
                result = await run.call(index, dep, request)
            except UpstreamFailure as exc:
                failures.append(exc)
                if not exc.fallback:
                    raise
                break
            judgement = judge(result.completion, validators, ctx, allow_repair="repair" in steps)
            if not judgement.ok or judgement.flagged:
                run.events.step("violation", dep.model, judgement)
            if judgement.ok or (policy.spec.mode == "monitor"):
                if not judgement.ok:
                    judgement.flagged.extend(judgement.violations + judgement.rejected)
                if judgement.repairs:
                    run.events.step("repair", dep.model, judgement)
                if judgement.redactions:
                    run.events.step("redaction", dep.model, judgement)
                outcome = _outcome(index, reasks, judgement)
                return Verdict(
                    judgement.completion,
                    outcome,
                    dep.model,
                    tuple(judgement.repairs),
                    tuple(judgement.flagged),
                )
            violations = judgement.violations + judgement.rejected
            if judgement.rejected:
                raise _rejection(violations)
            if (
                "reask" in steps
                and reasks < policy.spec.reask.max
                and run.may_attempt()
                and run.within_budget()
                and judgement.invalid_output is not None
            ):
                reasks += 1
                run.events.step("reask", dep.model, judgement)
                request = {
                    **body,
                    "messages": build_reask(body["messages"], judgement.invalid_output, judgement.violations),
                }
                continue
            break
        if violations and "fallback" not in steps:
            break
    if violations:
        raise _rejection(violations)
    raise resilience.final_failure(failures, deadline, [f"{alias}#{i}" for i in range(len(chain))])


def _rejection(violations: Sequence[Violation]) -> OutputValidationFailed:
    summary = "; ".join(v.message for v in violations[:3])
    return OutputValidationFailed(
        f"The model's output failed the policy after every allowed repair, re-ask and fallback: {summary}",
        [v.to_dict() for v in violations],
    )
