"""The walk over one alias's deployments, the same for every route (buffered chat, passthrough streams,
embeddings, and anything built on them):

    chain = Chain(alias, deployments, resilience=..., deadline=..., events=...)
    for step in chain.steps():
        result = await step.call(attempt)   # attempt(dep, key, timeout); None: go to the next one
        ...
    raise chain.final_failure()

The chain owns what must not differ between routes: cooled-down deployments are skipped (the first
caller after a cooldown claims the probe), the attempt cap, each attempt's timeout (the deployment's,
cut to what is left of the deadline), retries through `Resilience` (transient failures only, the retry
budget), one cooldown failure per failed attempt and a success per answered one, the fallback decision
(`UpstreamFailure.fallback`), the `upstream_call` / `retry` / `fallback` events and the final error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .errors import ProxyError, UpstreamFailure
from .resilience import Deadline, Resilience
from .settings import Deployment
from .upstream import UpstreamResult

__all__ = ["Attempts", "Chain", "ChainEvents", "NoEvents", "Step", "deployment_key"]

T = TypeVar("T")
Attempt = Callable[[Deployment, str, float], Awaitable[T]]


def deployment_key(alias: str, index: int, kind: str = "") -> str:
    """`alias#index`: the cooldown key of a deployment, and the mock provider's call counter."""
    return f"{alias}#{kind}{index}"


class ChainEvents(Protocol):
    """What a request reports as it goes (metrics and the audit log listen here)."""

    def upstream_call(self, deployment: str, result: str) -> None: ...
    def retry(self, deployment: str, error: UpstreamFailure) -> None: ...
    def step(self, kind: str, deployment: str, judgement: Any) -> None: ...


class NoEvents:
    """Events nobody listens to."""

    def upstream_call(self, deployment: str, result: str) -> None:
        return None

    def retry(self, deployment: str, error: UpstreamFailure) -> None:
        return None

    def step(self, kind: str, deployment: str, judgement: Any) -> None:
        return None


@dataclass
class Attempts:
    """What every upstream call of one request cost."""

    calls: int = 0
    tokens: int = 0
    cost: float | None = None

    def add(self, result: UpstreamResult) -> None:
        self.add_usage(result.tokens, result.cost)

    def fill(self, meta: Any) -> None:
        """Onto an answer's metadata (proxy.respond.AnswerMeta): calls, tokens and cost."""
        meta.attempts, meta.tokens, meta.cost = self.calls, self.tokens, self.cost

    def add_usage(self, tokens: int, cost: float | None) -> None:
        self.tokens += tokens
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost


class Chain:
    """One request's walk over an alias's deployments (see the module docstring)."""

    def __init__(
        self,
        alias: str,
        deployments: Sequence[Deployment],
        *,
        resilience: Resilience,
        events: ChainEvents | None = None,
        max_attempts: int | None = None,
        kind: str = "",
    ) -> None:
        self.alias, self.deployments, self.kind = alias, deployments, kind
        self.resilience = resilience
        self.deadline: Deadline = resilience.deadline()
        self.events: ChainEvents = events or NoEvents()
        self.max_attempts = max_attempts
        self.attempts = Attempts()
        self.failures: list[UpstreamFailure] = []

    def may_attempt(self) -> bool:
        return self.max_attempts is None or self.attempts.calls < self.max_attempts

    def steps(self, go_on: Callable[[], bool] | None = None) -> Iterator[Step]:
        """The deployments to try, in order: while attempts are left (and `go_on()` holds), skipping
        the ones cooling down."""
        for index, dep in enumerate(self.deployments):
            if not self.may_attempt() or (go_on is not None and not go_on()):
                return
            key = deployment_key(self.alias, index, self.kind)
            if not self.resilience.cooldowns.try_claim(key):
                continue
            if index > 0:
                self.events.step("fallback", dep.model, None)
            yield Step(self, index, dep, key)

    def final_failure(self) -> ProxyError:
        """The one error for a request whose every deployment failed or was skipped."""
        keys = [deployment_key(self.alias, i, self.kind) for i in range(len(self.deployments))]
        return self.resilience.final_failure(self.failures, self.deadline, keys)


@dataclass
class Step:
    """One deployment of the chain."""

    chain: Chain
    index: int
    dep: Deployment
    key: str

    async def call(self, attempt: Attempt[T], *, settle_later: bool = False) -> T | None:
        """`attempt(dep, key, timeout)` with retries; None when it failed and the chain may fall back.

        A failure that must not fall back (the request's own fault) is raised. `settle_later`: the
        answer goes on after `attempt` returns (a stream); its `upstream_call` event is `settle`d then.
        """
        chain = self.chain

        async def once(remaining: float) -> T:
            chain.attempts.calls += 1
            try:
                result = await attempt(self.dep, self.key, min(self.dep.timeout, remaining))
            except UpstreamFailure as exc:
                chain.events.upstream_call(self.dep.model, exc.code or "error")
                chain.resilience.cooldowns.failure(self.key, exc)
                raise
            chain.resilience.cooldowns.success(self.key)
            if not settle_later:
                chain.events.upstream_call(self.dep.model, "ok")
            return result

        try:
            return await chain.resilience.call(
                once,
                deadline=chain.deadline,
                may_attempt=chain.may_attempt,
                on_retry=lambda exc: chain.events.retry(self.dep.model, exc),
            )
        except UpstreamFailure as exc:
            chain.failures.append(exc)
            if not exc.fallback:
                raise
            return None

    def settle(self, result: str) -> None:
        """How an answer opened with `settle_later` ended (`ok`, `cancelled` or an error code)."""
        self.chain.events.upstream_call(self.dep.model, result)
