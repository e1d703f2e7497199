"""StreamGuard: incremental checks for passthrough streaming, holding back only what a match could span."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from validators._spans import apply_spans
from validators.base import RequestContext, Span, SpanValidator, Validator, Violation
from validators.text import LengthValidator, RegexValidator

__all__ = ["GuardStep", "StreamGuard"]

_TALLY_CHUNK = 256


@dataclass(frozen=True)
class GuardStep:
    """What may be sent now (`release`), what was found, and whether the stream must end (`stop`)."""

    release: str
    violations: list[Violation] = field(default_factory=list)
    stop: bool = False


class _TokenTally:
    """Token count of a growing text, re-tokenizing only the tail after the last safe split point."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._tail = ""
        self._done = 0

    def add(self, delta: str) -> int:
        """Append `delta`; return the token count of everything so far."""
        tail = self._tail + delta
        if len(tail) > 2 * _TALLY_CHUNK:
            # Split before a space that follows a non-space and precedes a letter: BPE pre-tokenizers
            # never join across such a point, so the counts of both sides add up exactly.
            cut = len(tail) - _TALLY_CHUNK
            while cut > 0 and not (
                tail[cut] == " "
                and not tail[cut - 1].isspace()
                and cut + 1 < len(tail)
                and tail[cut + 1].isalpha()
            ):
                cut -= 1
            if cut > 0:
                self._done += self._count(tail[:cut])
                tail = tail[cut:]
        self._tail = tail
        return self._done + self._count(tail)


def _stops(mode: str | None) -> bool:
    return mode in (None, "reject")


class StreamGuard:
    """Runs regex deny, phrases, pii and length on a stream; redact-mode findings are replaced in place.

    `on_fail: reject` and no `on_fail` (the ladder cannot run on text already sent) end the stream;
    `flag` only reports. Require-patterns and minimums are checked by `finish`.
    """

    def __init__(self, validators: Sequence[Validator], ctx: RequestContext) -> None:
        self._finders: list[SpanValidator] = [
            v
            for v in validators
            if isinstance(v, SpanValidator) and not (isinstance(v, RegexValidator) and not v.deny)
        ]
        self._lengths = [v for v in validators if isinstance(v, LengthValidator)]
        self._requires = [v for v in validators if isinstance(v, RegexValidator) and v.require]
        self._hold = max((v.window for v in self._finders), default=0)
        self._tallies = {id(v): _TokenTally(v.count_tokens) for v in self._lengths if v.count_tokens}
        self._full: list[str] = []
        self._buf = ""  # the text from absolute index `_base` on
        self._base = 0
        self._sent = 0  # absolute index up to which text was released
        self._cap: int | None = None  # length redaction: nothing past this index is ever sent
        self._reported: set[tuple[str, int | str]] = set()
        self._stopped = False
        self.violations: list[Violation] = []

    def feed(self, delta: str) -> GuardStep:
        """Take the next piece of text; return what may be released now."""
        if self._stopped:
            return GuardStep("", [], True)
        self._full.append(delta)
        if self._cap is not None and self._sent >= self._cap:
            return GuardStep("", [], False)  # cut by a length redaction: the rest is dropped
        self._buf += delta
        return self._step(delta, final=False)

    def finish(self) -> GuardStep:
        """The stream ended: check the held-back rest and the whole-text rules, release what passes."""
        if self._stopped:
            return GuardStep("", [], True)
        step = self._step("", final=True)
        if step.stop:
            return step
        whole = "".join(self._full)
        found: list[Violation] = []
        stop = False
        for v in self._requires:
            for source, regex in v.require:
                if regex.search(whole) is None:
                    msg = f"the output does not match the required pattern {source!r}"
                    if self._report(Violation(v.type, msg), ("require", source)):
                        found.append(self.violations[-1])
                        stop = stop or _stops(v.on_fail)
        for length in self._lengths:
            if length.min_chars is not None and len(whole) < length.min_chars:
                msg = f"the output is {len(whole):,} characters long; the minimum is {length.min_chars:,}"
                if self._report(Violation(length.type, msg), ("min_chars", 0)):
                    found.append(self.violations[-1])
                    stop = stop or _stops(length.on_fail)
        if stop:
            self._stopped = True
            return GuardStep("", [*step.violations, *found], True)
        return GuardStep(step.release, [*step.violations, *found], False)

    def _report(self, violation: Violation, key: tuple[str, int | str]) -> bool:
        if key in self._reported:
            return False
        self._reported.add(key)
        self.violations.append(violation)
        return True

    def _length_limit(self, delta: str, found: list[Violation]) -> bool:
        """Check max_chars / max_tokens on everything received; True when the stream must stop."""
        total = self._base + len(self._buf)
        stop = False
        for v in self._lengths:
            problem = None
            if v.max_chars is not None and total > v.max_chars:
                if v.on_fail == "redact":
                    self._cap = min(self._cap if self._cap is not None else v.max_chars, v.max_chars)
                    problem = f"the output is longer than {v.max_chars:,} characters; the rest was cut"
                else:
                    problem = f"the output is longer than {v.max_chars:,} characters"
            tally = self._tallies.get(id(v))
            if tally is not None and v.max_tokens is not None and tally.add(delta) > v.max_tokens:
                problem = f"the output is longer than {v.max_tokens:,} tokens"
            if problem and self._report(Violation(v.type, problem), (v.type, problem)):
                found.append(self.violations[-1])
                stop = stop or _stops(v.on_fail)
        return stop

    def _step(self, delta: str, final: bool) -> GuardStep:
        found: list[Violation] = []
        if self._length_limit(delta, found):
            self._stopped = True
            return GuardStep("", found, True)
        text, base = self._buf, self._base
        limit = len(text) if final else max(len(text) - self._hold, self._sent - base)
        for finder in self._finders if not final else ():
            pending = getattr(finder, "pending", None)
            start = pending(text) if pending is not None else None
            if start is not None:
                limit = max(min(limit, start), self._sent - base)
        spans: list[tuple[SpanValidator, Span]] = [(v, s) for v in self._finders for s in v.find(text)]
        moved = not final
        while moved:
            moved = False
            for _, span in spans:
                if span.start < limit < span.end and span.start >= self._sent - base:
                    limit, moved = span.start, True
        redactions: list[Span] = []
        stop = False
        for validator, span in spans:
            if span.end > limit or span.end <= self._sent - base:
                continue
            if validator.on_fail == "redact":
                redactions.append(span)
            if self._report(Violation(validator.type, span.message), (span.name, base + span.start)):
                found.append(self.violations[-1])
                stop = stop or _stops(validator.on_fail)
        if stop:
            self._stopped = True
            return GuardStep("", found, True)
        end = limit if self._cap is None else min(limit, max(self._cap - base, self._sent - base))
        release = apply_spans(text, redactions, self._sent - base, end)
        self._sent = base + end
        keep_from = max(0, end - self._hold)
        self._buf, self._base = text[keep_from:], base + keep_from
        return GuardStep(release, found, False)
