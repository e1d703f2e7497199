"""The rules of proxy.resilience on an injected clock and sleep: no servers, no real waiting."""

from __future__ import annotations

import asyncio

import pytest

from proxy.errors import (
    DeadlineExceeded,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamTransient,
    UpstreamUnreachable,
)
from proxy.resilience import Cooldowns, Deadline, Resilience, RetryBudget
from proxy.settings import RetrySettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_opens_probes_alone_and_expires_a_lost_probe() -> None:
    clock = Clock()
    cooldowns = Cooldowns(failures=2, seconds=5, clock=clock)
    cooldowns.failure("a#0", UpstreamRejected("context too long", context_window=True))
    cooldowns.failure("a#0", UpstreamRejected("bad parameter"))
    assert cooldowns.try_claim("a#0")  # refusals of the request say nothing about the deployment
    cooldowns.failure("a#0", UpstreamTransient("503"))
    cooldowns.failure("a#0", UpstreamTimeout("slow"))
    assert not cooldowns.try_claim("a#0") and cooldowns.cooling("a#0")
    assert cooldowns.remaining("a#0") == 5
    clock.now += 5
    assert cooldowns.try_claim("a#0")  # this caller is the probe...
    assert not cooldowns.try_claim("a#0")  # ...and goes alone
    clock.now += 5  # the probe's client vanished: it never reported
    assert cooldowns.try_claim("a#0")  # a new probe may go
    cooldowns.failure("a#0", UpstreamTransient("503"))
    assert not cooldowns.try_claim("a#0")  # a failed probe reopens at once
    clock.now += 5
    assert cooldowns.try_claim("a#0")
    cooldowns.success("a#0")
    assert cooldowns.try_claim("a#0") and cooldowns.try_claim("a#0")
    assert cooldowns.states() == {}


def test_retry_budget_ratio_minimum_and_window() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, minimum=3, window=10, clock=clock)
    for _ in range(10):
        budget.record_first()
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]  # min 3 > 0.2 * 10
    for _ in range(10):
        budget.record_first()
    assert budget.try_spend() and not budget.try_spend()  # 0.2 * 20 = 4
    clock.now += 11
    budget.record_first()
    assert budget.try_spend()  # the old retries left the window


def _resilience(clock: Clock, pauses: list[float], **retry: float) -> Resilience:
    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.now += seconds

    settings = RetrySettings(**{"initial_backoff": 0.1, "max_backoff": 1, "deadline": 10, **retry})
    return Resilience(settings, clock=clock, sleep=sleep)


def _failing(errors: list[Exception], calls: list[float]):  # type: ignore[no-untyped-def]
    async def attempt(timeout: float) -> str:
        calls.append(timeout)
        if errors:
            raise errors.pop(0)
        return "ok"

    return attempt


def test_retry_after_is_honoured_only_when_it_fits_the_deadline() -> None:
    clock, pauses, calls = Clock(), [], []  # type: ignore[var-annotated]
    resilience = _resilience(clock, pauses)
    errors: list[Exception] = [UpstreamRateLimited("429", retry_after=2)]
    result = asyncio.run(
        resilience.call(_failing(errors, calls), deadline=resilience.deadline(), may_attempt=lambda: True)
    )
    assert result == "ok" and pauses == [2] and len(calls) == 2
    assert calls[1] == pytest.approx(8)  # the second attempt gets what is left of the deadline

    errors = [UpstreamRateLimited("429", retry_after=30)]
    with pytest.raises(UpstreamRateLimited):
        asyncio.run(
            resilience.call(_failing(errors, []), deadline=resilience.deadline(), may_attempt=lambda: True)
        )
    assert pauses == [2]  # no 30 s sleep: the chain moves on at once


@pytest.mark.parametrize(
    "error",
    [UpstreamRejected("bad"), UpstreamAuthFailed("key"), UpstreamUnreachable("refused")],
    ids=["rejected", "auth", "unreachable"],
)
def test_never_retried_on_the_same_deployment(error: Exception) -> None:
    clock, pauses, calls = Clock(), [], []  # type: ignore[var-annotated]
    resilience = _resilience(clock, pauses)
    with pytest.raises(type(error)):
        asyncio.run(
            resilience.call(
                _failing([error], calls), deadline=resilience.deadline(), may_attempt=lambda: True
            )
        )
    assert len(calls) == 1 and pauses == []


def test_the_last_attempt_spends_no_retry_budget() -> None:
    clock, pauses, calls = Clock(), [], []  # type: ignore[var-annotated]
    resilience = _resilience(clock, pauses, attempts=3, budget_min=3, budget_ratio=0)
    retried: list[Exception] = []
    errors: list[Exception] = [UpstreamTransient("503") for _ in range(3)]
    with pytest.raises(UpstreamTransient):
        asyncio.run(
            resilience.call(
                _failing(errors, calls),
                deadline=resilience.deadline(),
                may_attempt=lambda: True,
                on_retry=retried.append,
            )
        )
    assert len(calls) == 3 and len(retried) == 2 and len(pauses) == 2
    assert all(p <= 1 for p in pauses)
    assert resilience.budget.try_spend() and not resilience.budget.try_spend()  # only 2 of 3 were spent


def test_final_failure_table() -> None:
    clock = Clock()
    resilience = Resilience(RetrySettings(deadline=10), clock=clock)
    deadline = Deadline(10, clock)
    limited = [UpstreamRateLimited("a", retry_after=7), UpstreamRateLimited("b", retry_after=3)]
    error = resilience.final_failure(limited, deadline)
    assert isinstance(error, RateLimited) and error.retry_after == 3
    timeouts = [UpstreamTimeout("a"), UpstreamTimeout("b")]
    assert resilience.final_failure(timeouts, deadline) is timeouts[-1]
    mixed = resilience.final_failure([UpstreamTransient("x"), UpstreamTimeout("y"), limited[0]], deadline)
    assert mixed.status_code == 502 and mixed.headers()["x-should-retry"] == "false"
    resilience.cooldowns.failure("m#0")
    cooling = resilience.final_failure([], deadline, ["m#0"])
    assert cooling.code == "deployments_cooling_down" and "retry-after" in cooling.headers()
    clock.now += 11
    assert isinstance(resilience.final_failure(timeouts, deadline), DeadlineExceeded)


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    """Pause before attempt n+1 is uniform in [0, initial * 2**(n-1)]: the ceiling doubles per attempt."""
    by_attempt: list[list[float]] = [[], [], []]
    for _ in range(60):
        clock, pauses, calls = Clock(), [], []  # type: ignore[var-annotated]
        resilience = _resilience(
            clock, pauses, attempts=4, initial_backoff=1, max_backoff=100, deadline=1000, budget_min=1000
        )
        errors: list[Exception] = [UpstreamTransient("503") for _ in range(3)]
        result = asyncio.run(
            resilience.call(_failing(errors, calls), deadline=resilience.deadline(), may_attempt=lambda: True)
        )
        assert result == "ok" and len(calls) == 4 and len(pauses) == 3
        for seen, pause in zip(by_attempt, pauses, strict=True):
            seen.append(pause)
    for n, seen in enumerate(by_attempt):
        ceiling = 2.0**n
        assert all(0 <= p <= ceiling for p in seen)
        assert max(seen) > ceiling / 2  # jittered up to this attempt's ceiling, not the previous one's
