"""Retries (tenacity), the request deadline, the retry budget, per-deployment cooldowns and the final error.

One request walks its alias's chain; on each deployment `Resilience.call` makes at most `retry.attempts`
attempts. A failed attempt is retried only when it is transient (429, 5xx, timeout, reset, malformed
body), the policy's attempt cap and the retry budget allow it, and the pause (the provider's Retry-After,
else exponential backoff with full jitter) ends before the deadline; otherwise the chain moves on at once.
`Resilience.final_failure` turns what every deployment said into the one error the client gets.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from .errors import (
    DeadlineExceeded,
    ProxyError,
    RateLimited,
    UpstreamFailure,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)
from .settings import RetrySettings

_DEADLINE_SLACK = 0.01  # seconds

__all__ = ["Clock", "Cooldowns", "Deadline", "Resilience", "RetryBudget"]

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
_MARGIN = 0.05  # seconds a retry must leave before the deadline to be worth making


@dataclass
class Deadline:
    """The time left for one request, all attempts and waits included."""

    seconds: float
    clock: Clock = time.monotonic
    start: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.start = self.clock()

    @property
    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.start)

    def check(self) -> float:
        """The time left; DeadlineExceeded when none is."""
        left = self.remaining
        if left <= 0:
            raise DeadlineExceeded(f"The request did not complete within its {self.seconds:g} s deadline.")
        return left


class RetryBudget:
    """Retries may add at most `ratio` of the first attempts over a sliding window (at least `minimum`)."""

    def __init__(self, ratio: float, minimum: int, window: float, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.configure(ratio, minimum, window)
        self._firsts: deque[float] = deque()
        self._retries: deque[float] = deque()

    def configure(self, ratio: float, minimum: int, window: float) -> None:
        self._ratio, self._min, self._window = ratio, minimum, window

    def _trim(self, now: float) -> None:
        for q in (self._firsts, self._retries):
            while q and q[0] < now - self._window:
                q.popleft()

    def record_first(self) -> None:
        now = self._clock()
        self._trim(now)
        self._firsts.append(now)

    def try_spend(self) -> bool:
        """Take one retry from the budget, or refuse."""
        now = self._clock()
        self._trim(now)
        if len(self._retries) >= max(self._min, self._ratio * len(self._firsts)):
            return False
        self._retries.append(now)
        return True


class Cooldowns:
    """After `failures` consecutive failures a deployment is skipped for `seconds`; then one probe decides.

    A probe that never reports (its client left) expires after `seconds` (at least 1 s), so a deployment
    cannot stay skipped forever. Refusals of the request itself (upstream 400/404/422) say nothing about
    the deployment's health and are not counted.
    """

    def __init__(self, failures: int, seconds: float, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.configure(failures, seconds)
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._probes: dict[str, float] = {}  # key -> when its probe started

    def configure(self, failures: int, seconds: float) -> None:
        self._limit, self._seconds = failures, seconds
        self._probe_timeout = max(seconds, 1.0)

    def _probing(self, key: str, now: float) -> bool:
        started = self._probes.get(key)
        return started is not None and now - started < self._probe_timeout

    def try_claim(self, key: str) -> bool:
        """Claim `key` for a request: True when it may be used now. After a cooldown the first caller
        to ask is claimed as the probe (and the others are refused until it reports); `cooling` only looks."""
        until = self._until.get(key)
        if until is None:
            return True
        now = self._clock()
        if now < until or self._probing(key, now):
            return False
        self._probes[key] = now
        return True

    def cooling(self, key: str) -> bool:
        until = self._until.get(key)
        now = self._clock()
        return until is not None and (now < until or self._probing(key, now))

    def remaining(self, key: str) -> float:
        """Seconds until `key` may be tried again (0 when it may be now)."""
        until = self._until.get(key)
        return 0.0 if until is None else max(0.0, until - self._clock())

    def success(self, key: str) -> None:
        self._failures.pop(key, None)
        self._until.pop(key, None)
        self._probes.pop(key, None)

    def failure(self, key: str, error: BaseException | None = None) -> None:
        if isinstance(error, UpstreamRejected):  # the request's fault: the deployment answered
            self._probes.pop(key, None)  # a probe it was frees its slot; the next caller probes
            return
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count >= self._limit or key in self._probes:
            self._until[key] = self._clock() + self._seconds
        self._probes.pop(key, None)

    def states(self) -> dict[str, bool]:
        return {k: self.cooling(k) for k in set(self._failures) | set(self._until)}


class Resilience:
    """Runs one deployment's attempts with one tenacity `AsyncRetrying`: transient errors only, backoff
    with full jitter or the provider's Retry-After, stopped by the attempt count, the policy's attempt
    cap, the deadline (the pause must fit) and the retry budget, in that order.

    Holds the per-app health state (cooldowns, retry budget): it lives in `Services`, so a reload keeps
    it and only `configure`s the new numbers."""

    def __init__(
        self, settings: RetrySettings, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.budget = RetryBudget(settings.budget_ratio, settings.budget_min, settings.budget_window, clock)
        self.cooldowns = Cooldowns(settings.cooldown_failures, settings.cooldown_seconds, clock)

    def configure(self, settings: RetrySettings) -> None:
        """Take a reloaded `retry` section; the cooldowns and the budget keep what they counted."""
        self.settings = settings
        self.budget.configure(settings.budget_ratio, settings.budget_min, settings.budget_window)
        self.cooldowns.configure(settings.cooldown_failures, settings.cooldown_seconds)

    def deadline(self) -> Deadline:
        return Deadline(self.settings.deadline, self.clock)

    async def call(
        self,
        attempt: Callable[[float], Awaitable[T]],
        *,
        deadline: Deadline,
        may_attempt: Callable[[], bool],
        on_retry: Callable[[UpstreamFailure], None] | None = None,
    ) -> T:
        """Call `attempt(time left)` until it succeeds or retrying is pointless; re-raise the last failure.

        The first attempt runs without tenacity (a call that succeeds never builds `AsyncRetrying`, ~22 µs
        per call); tenacity takes over from the first retry, with the same rules."""
        self.budget.record_first()
        try:
            return await attempt(deadline.check())
        except UpstreamFailure as exc:
            if not exc.transient:
                raise
            first: UpstreamFailure | None = exc
        backoff = wait_random_exponential(
            multiplier=self.settings.initial_backoff, max=self.settings.max_backoff
        )

        def pause(state: RetryCallState) -> float:  # tenacity's `wait`: Retry-After, else backoff
            hint = getattr(_failure(state), "retry_after", None)
            return float(hint) if hint is not None else float(backoff(state))

        def give_up(state: RetryCallState) -> bool:  # tenacity's `stop`, after `wait` set the pause
            return (
                state.attempt_number >= self.settings.attempts
                or not may_attempt()
                or state.upcoming_sleep >= deadline.remaining - _MARGIN  # go to the next deployment now
                or not self.budget.try_spend()  # last: only a retry that will happen spends a token
            )

        def announce(state: RetryCallState) -> None:
            failure = _failure(state)
            if on_retry is not None and failure is not None:
                on_retry(failure)

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, UpstreamFailure) and exc.transient),
            wait=pause,
            stop=give_up,
            before_sleep=announce,
            sleep=self.sleep,
            reraise=True,
        )
        async for state in retrying:
            with state:
                if first is not None:  # tenacity's attempt 1: the one that already failed
                    failed, first = first, None
                    raise failed
                return await attempt(deadline.check())
        raise AssertionError("unreachable")  # pragma: no cover

    def final_failure(
        self, failures: Sequence[UpstreamFailure], deadline: Deadline, keys: Iterable[str] = ()
    ) -> ProxyError:
        """The one error for a request every deployment failed (`keys`: the chain's cooldown keys)."""
        # the event loop may fire the last attempt's timeout a hair before the deadline itself
        if deadline.remaining <= _DEADLINE_SLACK:
            return DeadlineExceeded(
                f"The request did not complete within its {deadline.seconds:g} s deadline."
            )
        if not failures:
            wait = min((self.cooldowns.remaining(k) for k in keys), default=0.0)
            error = UpstreamTransient(
                "Every deployment of this model is cooling down after repeated failures; "
                "retry after the indicated time.",
                retry_after=max(1.0, wait),
            )
            error.code = "deployments_cooling_down"
            return error
        return final_failure(failures)


def _failure(state: RetryCallState) -> UpstreamFailure | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc if isinstance(exc, UpstreamFailure) else None


def final_failure(failures: Sequence[UpstreamFailure]) -> ProxyError:
    """429 when every deployment was rate limited; the shared error when all failed alike; else 502."""
    if all(isinstance(f, UpstreamRateLimited) for f in failures):
        hints = [f.retry_after for f in failures if f.retry_after is not None]
        return RateLimited(
            "Every deployment of this model is rate limited; retry after the indicated time.",
            retry_after=min(hints) if hints else 1.0,
        )
    last = failures[-1]
    if all(f.status_code == last.status_code for f in failures):
        return last  # all 502s, all timeouts (504), all refusals of the request (400): keep its message
    kinds = ", ".join(dict.fromkeys(f.code or "error" for f in failures))
    return UpstreamTransient(
        f"Every deployment of this model failed ({kinds}); the last said: {last.message}"
    )
