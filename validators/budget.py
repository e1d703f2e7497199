"""A per-request time budget for validation and repair, checked cooperatively inside every loop.

Validation is pure CPU, so nothing can interrupt it from outside (a thread cannot be cancelled and
a worker process per request would cost more than most checks). Instead every place where work can
multiply — each jsonschema keyword, each `$ref` / `anyOf` / container of the compiled check, each
step of schema coercion — calls `tick()`, which raises `ValidationBudgetExceeded` once the running
meter's deadline has passed. The meter travels in a `ContextVar` rather than through every
signature: compiled checks are shared by all requests and threads, and a context variable is the
one place a shared closure can find the caller's meter (`asyncio.to_thread` copies it along).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["Budget", "BudgetSlice", "ValidationBudgetExceeded", "tick"]

_CHECK_EVERY = 64  # ticks between two clock reads: a tick is a few ns, a clock read ~50 ns


class ValidationBudgetExceeded(Exception):
    """The request's validation ran past its budget (`limit_ms`); not a ValueError, so no repair eats it."""

    def __init__(self, limit_ms: float) -> None:
        super().__init__(f"validation exceeded its budget of {limit_ms:g} ms")
        self.limit_ms = limit_ms


class BudgetSlice(ValidationBudgetExceeded):
    """Only the current slice ran out (the budget has time left): the caller may resume elsewhere."""


class _Meter:
    __slots__ = ("clock", "deadline", "error", "limit_ms", "steps")

    def __init__(
        self,
        deadline: float,
        clock: Callable[[], float],
        error: type[ValidationBudgetExceeded],
        limit_ms: float,
    ) -> None:
        self.deadline = deadline
        self.clock = clock
        self.error = error
        self.limit_ms = limit_ms
        self.steps = _CHECK_EVERY


_ACTIVE: ContextVar[_Meter | None] = ContextVar("guardproxy_validation_meter", default=None)


def tick() -> None:
    """Count one unit of work; raise when the running meter's deadline has passed (no meter: free)."""
    meter = _ACTIVE.get()
    if meter is None:
        return
    meter.steps -= 1
    if meter.steps <= 0:
        meter.steps = _CHECK_EVERY
        if meter.clock() > meter.deadline:
            raise meter.error(meter.limit_ms)


class Budget:
    """What is left of one request's validation time; every `running()` block spends from it."""

    def __init__(self, limit_ms: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_ms = limit_ms
        self.remaining = limit_ms / 1000.0
        self._clock = clock

    @property
    def exhausted(self) -> bool:
        """True once the whole budget is spent."""
        return self.remaining <= 0

    def running(self, slice_seconds: float | None = None) -> _Running:
        """Run the block against the budget (or a shorter slice of it, which raises BudgetSlice)."""
        if self.exhausted:
            raise ValidationBudgetExceeded(self.limit_ms)
        sliced = slice_seconds is not None and slice_seconds < self.remaining
        allowed = slice_seconds if sliced and slice_seconds is not None else self.remaining
        return _Running(self, allowed, BudgetSlice if sliced else ValidationBudgetExceeded)


class _Running:
    """One `Budget.running()` block: its meter is the running one inside, its time is spent at the end
    (a class, not a generator context manager: it is entered once or twice per request)."""

    __slots__ = ("_allowed", "_budget", "_error", "_start", "_token")

    def __init__(self, budget: Budget, allowed: float, error: type[ValidationBudgetExceeded]) -> None:
        self._budget, self._allowed, self._error = budget, allowed, error

    def __enter__(self) -> None:
        budget = self._budget
        self._start = start = budget._clock()
        meter = _Meter(start + self._allowed, budget._clock, self._error, budget.limit_ms)
        self._token = _ACTIVE.set(meter)

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._token)
        self._budget.remaining -= self._budget._clock() - self._start
