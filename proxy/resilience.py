"""Retries (tenacity), the request deadline, the retry budget and per-deployment cooldowns."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from .errors import DeadlineExceeded, UpstreamFailure
from .settings import RetrySettings

__all__ = ["Clock", "Cooldowns", "Deadline", "Resilience", "RetryBudget"]

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


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
        self._firsts.append(self._clock())

    def try_spend(self) -> bool:
        """Take one retry from the budget, or refuse."""
        now = self._clock()
        self._trim(now)
        if len(self._retries) >= max(self._min, self._ratio * len(self._firsts)):
            return False
        self._retries.append(now)
        return True


class Cooldowns:
    """After `failures` consecutive failures a deployment is skipped for `seconds`; then one probe decides."""

    def __init__(self, failures: int, seconds: float, clock: Clock = time.monotonic) -> None:
        self._limit, self._seconds, self._clock = failures, seconds, clock
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._probing: set[str] = set()

    def available(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return True
        if self._clock() < until or key in self._probing:
            return False
        self._probing.add(key)  # this caller is the probe
        return True

    def cooling(self, key: str) -> bool:
        until = self._until.get(key)
        return until is not None and (self._clock() < until or key in self._probing)

    def success(self, key: str) -> None:
        self._failures.pop(key, None)
        self._until.pop(key, None)
        self._probing.discard(key)

    def failure(self, key: str) -> None:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count >= self._limit or key in self._probing:
            self._until[key] = self._clock() + self._seconds
        self._probing.discard(key)

    def states(self) -> dict[str, bool]:
        return {k: self.cooling(k) for k in set(self._failures) | set(self._until)}


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
        """Call `attempt(timeout)` until it succeeds or retrying is pointless; re-raise the last failure."""
        backoff = wait_random_exponential(
            multiplier=self.settings.initial_backoff, max=self.settings.max_backoff
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hinted = getattr(exc, "retry_after", None)
            return float(hinted) if hinted is not None else float(backoff(state))

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, UpstreamFailure) or not exc.transient or not may_attempt():
                return False
            hinted = exc.retry_after
            pause = hinted if hinted is not None else self.settings.initial_backoff
            if pause >= deadline.remaining - 0.05:
                return False  # it cannot fit: go to the next deployment at once
            if not self.budget.try_spend():
                return False
            if on_retry is not None:
                on_retry(exc)
            return True

        self.budget.record_first()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.attempts),
            wait=wait,
            retry=retry_if_exception(should_retry),
            sleep=self.sleep,
            reraise=True,
        )
        async for state in retrying:
            with state:
                return await attempt(deadline.check())
        raise AssertionError("unreachable")  # pragma: no cover
