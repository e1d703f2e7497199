"""The one word an answer ends with (`x-guardproxy-outcome`), the one rule deciding it, and the 422 built
when the output failed the policy. The ladder, passthrough streams and `guardproxy policy test` all
decide through `decide`."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from validators import Violation

from .errors import OutputValidationFailed

__all__ = ["Outcome", "decide", "rejection"]


class Outcome(StrEnum):
    """How an answer came to be (compares equal to its header word)."""

    PASS = "pass"
    REPAIRED = "repaired"
    REDACTED = "redacted"
    REASKED = "reasked"
    FALLBACK = "fallback"
    FLAGGED = "flagged"
    REJECTED = "rejected"
    ERROR = "error"
    STREAMING = "streaming"  # the headers of a stream whose verdict rides in its last chunk


def decide(
    *,
    rejected: bool = False,
    flagged: bool = False,
    fallback: bool = False,
    reasked: bool = False,
    repaired: bool = False,
    redacted: bool = False,
) -> Outcome:
    """The first that holds, in this order: rejected, flagged, fallback, reasked, repaired, redacted."""
    if rejected:
        return Outcome.REJECTED
    if flagged:
        return Outcome.FLAGGED
    if fallback:
        return Outcome.FALLBACK
    if reasked:
        return Outcome.REASKED
    if repaired:
        return Outcome.REPAIRED
    if redacted:
        return Outcome.REDACTED
    return Outcome.PASS


def rejection(violations: Sequence[Violation], *, how: str) -> OutputValidationFailed:
    """The 422 for output that failed the policy; `how` says when (after re-asks, mid-stream, ...)."""
    summary = "; ".join(v.message for v in violations[:3])
    return OutputValidationFailed(f"The model's output {how}: {summary}", [v.to_dict() for v in violations])
