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

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_random_exponential

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
        self._ratio, self._min, self._window, self._clock = ratio, minimum, window, clock
        self._firsts: deque[float] = deque()
        self._retries: deque[float] = deque()

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
        self._limit, self._seconds, self._clock = failures, seconds, clock
        self._probe_timeout = max(seconds, 1.0)
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._probes: dict[str, float] = {}  # key -> when its probe started

    def _probing(self, key: str, now: float) -> bool:
        started = self._probes.get(key)
        return started is not None and now - started < self._probe_timeout

    def available(self, key: str) -> bool:
        """Whether a request may use `key` now; after a cooldown the first caller becomes the probe."""
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
        if isinstance(error, UpstreamRejected):
            return
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count >= self._limit or key in self._probes:
            self._until[key] = self._clock() + self._seconds
        self._probes.pop(key, None)

    def states(self) -> dict[str, bool]:
        return {k: self.cooling(k) for k in set(self._failures) | set(self._until)}


def _numbered(number: int) -> RetryCallState:
    """A tenacity call state at attempt `number`, for its wait strategies."""
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # waits read only the number
    state.attempt_number = number
    return state


class Resilience:
    """Runs one deployment's attempts with tenacity: transient errors only, backoff with full jitter,
    Retry-After honoured when it fits the deadline, the retry budget and the attempt cap respected."""

    def __init__(
        self, settings: RetrySettings, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.budget = RetryBudget(settings.budget_ratio, settings.budget_min, settings.budget_window, clock)
        self.cooldowns = Cooldowns(settings.cooldown_failures, settings.cooldown_seconds, clock)

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
        """Call `attempt(timeout)` until it succeeds or retrying is pointless; re-raise the last failure.

        The first attempt runs bare: most calls succeed at once and never pay for tenacity's machinery.
        A retry is planned by `plan` (attempt numbers count the first one) and run by tenacity.
        """
        backoff = wait_random_exponential(
            multiplier=self.settings.initial_backoff, max=self.settings.max_backoff
        )
        planned: dict[int, float] = {}

        def plan(exc: BaseException | None, number: int) -> bool:
            """Whether to retry after attempt `number` failed with `exc`; records the pause before it."""
            if not isinstance(exc, UpstreamFailure) or not exc.transient:
                return False
            if number >= self.settings.attempts or not may_attempt():
                return False
            pause = exc.retry_after if exc.retry_after is not None else float(backoff(_numbered(number)))
            if pause >= deadline.remaining - _MARGIN:
                return False  # it cannot fit: go to the next deployment at once
            if not self.budget.try_spend():
                return False
            planned[number] = pause
            if on_retry is not None:
                on_retry(exc)
            return True

        self.budget.record_first()
        try:
            return await attempt(deadline.check())
        except UpstreamFailure as exc:
            if not plan(exc, 1):
                raise
        await self.sleep(planned.pop(1))
        retrying = AsyncRetrying(  # tenacity's attempt n is our attempt n + 1
            stop=stop_after_attempt(self.settings.attempts - 1),
            wait=lambda state: planned.pop(state.attempt_number + 1, 0.0),
            retry=lambda state: plan(
                state.outcome.exception() if state.outcome else None, state.attempt_number + 1
            ),
            sleep=self.sleep,
            reraise=True,
        )
        async for state in retrying:
            with state:
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
