"""StreamGuard: incremental checks for passthrough streaming, holding back only what a match could span."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from validators._spans import apply_spans
from validators.base import RequestContext, Span, SpanValidator, Validator, Violation, finds_spans
from validators.text import REDACTED, LengthValidator, RegexValidator

__all__ = ["GuardStep", "HOLD_CAP", "StreamGuard"]

_TALLY_CHUNK = 256
HOLD_CAP = 64 * 1024  # default `hold_cap`: the longest run a stream holds back (longer: redacted or ends it)
_RECHECK_FROM = 256  # past this much held text, re-scan only after it grew by an eighth (linear cost)
_CONTEXT_CAP = 4096  # kept text before the release point when no clean cut is found
_Found = tuple[SpanValidator, Span]
_NEUTRAL = frozenset(chr(i) for i in range(128)) - frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:.+"
)


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
    `flag` only reports. Require-patterns and minimums are checked by `finish`. `hold_cap` bounds the
    characters held back: a longer run that could still be a match is never sent.
    """

    def __init__(
        self, validators: Sequence[Validator], ctx: RequestContext, *, hold_cap: int = HOLD_CAP
    ) -> None:
        if hold_cap < 1:
            raise ValueError("hold_cap must be at least 1")
        self._hold_cap = hold_cap
        self._finders: list[SpanValidator] = [
            v for v in validators if finds_spans(v) and not (isinstance(v, RegexValidator) and not v.deny)
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
        self._swallow = False  # dropping the rest of a run that went over the hold cap
        self._checked = 0  # held-back size at the last scan that released nothing
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

    def _scan(self, text: str) -> tuple[list[_Found], list[tuple[int, int]]]:
        """Every finding in `text`, and the extent of every raw match (findings' extents by default)."""
        spans: list[_Found] = []
        extents: list[tuple[int, int]] = []
        for v in self._finders:
            both = getattr(v, "find_extents", None)
            found, raw = both(text) if both is not None else (v.find(text), None)
            spans.extend((v, s) for s in found)
            extents.extend(raw if raw is not None else ((s.start, s.end) for s in found))
        return spans, extents

    def _limit(self, text: str, sent: int, spans: list[_Found]) -> tuple[int, Validator | None]:
        """Where the held-back text begins, and the validator that holds the most."""
        limit, holder = max(len(text) - self._hold, sent), None
        for finder in self._finders:
            pending = getattr(finder, "pending", None)
            start = pending(text) if pending is not None else None
            if start is not None and start < limit:
                limit, holder = max(start, sent), finder
        moved = True
        while moved:
            moved = False
            for finder, span in spans:
                if span.start < limit < span.end and span.start >= sent:
                    limit, holder, moved = span.start, finder, True
        return limit, holder

    def _step(self, delta: str, final: bool) -> GuardStep:
        found: list[Violation] = []
        if self._length_limit(delta, found):
            self._stopped = True
            return GuardStep("", found, True)
        if self._swallow and not self._drop_run_rest(final):
            return GuardStep("", found, False)
        text, base = self._buf, self._base
        sent = self._sent - base
        held = len(text) - sent
        if not final and _RECHECK_FROM < held <= self._hold_cap and held < self._checked + self._checked // 8:
            return GuardStep("", found, False)  # a long run is still arriving: check it again at +1/8
        spans, extents = self._scan(text)
        limit, holder = (len(text), None) if final else self._limit(text, sent, spans)
        over = not final and len(text) - limit > self._hold_cap
        redactions: list[Span] = []
        stop = False
        for validator, span in spans:
            if span.end > limit or span.end <= sent:
                continue
            if validator.on_fail == "redact":
                redactions.append(span)
            if self._report(Violation(validator.type, span.message), (span.name, base + span.start)):
                found.append(self.violations[-1])
                stop = stop or _stops(validator.on_fail)
        if over:
            stop = self._over_cap(holder, len(text) - limit, found) or stop
        if stop:
            self._stopped = True
            return GuardStep("", found, True)
        end = limit if self._cap is None else min(limit, max(self._cap - base, sent))
        release = apply_spans(text, redactions, sent, end)
        self._checked = 0 if end > sent else held
        if over and end == limit:
            release += self._tail_of_run(text[limit:], holder)
            end = len(text)
        self._sent = base + end
        keep_from = _sync_point(text, end, extents, self._hold)
        self._buf, self._base = text[keep_from:], base + keep_from
        return GuardStep(release, found, False)

    def _over_cap(self, holder: Validator | None, size: int, found: list[Violation]) -> bool:
        """A run longer than the hold cap that could still match: report it; True when it ends the stream."""
        v = holder or self._finders[0]
        msg = (
            f"the output has a run of {size:,} characters that could still be a match, longer than the "
            f"{self._hold_cap:,} a stream may hold back; it was not sent"
            if v.on_fail != "flag"
            else f"the output has a run of {size:,} characters too long to check while streaming"
        )
        if self._report(Violation(v.type, msg), ("hold_cap", self._sent)):
            found.append(self.violations[-1])
        return _stops(v.on_fail)

    def _tail_of_run(self, run: str, holder: Validator | None) -> str:
        """What replaces a run over the cap: a placeholder (its rest is dropped too), or itself if flagged."""
        if holder is not None and holder.on_fail == "flag":
            return run
        self._swallow = True
        return REDACTED

    def _drop_run_rest(self, final: bool) -> bool:
        """Drop the rest of a run cut at the cap, up to the next whitespace; False while it goes on."""
        sent = self._sent - self._base
        rest = self._buf[sent:]
        stop_at = next((i for i, c in enumerate(rest) if c.isspace()), None)
        if stop_at is None:
            self._sent, self._buf, self._base = self._base + len(self._buf), "", self._base + len(self._buf)
            return final
        self._swallow = False
        self._buf, self._base = rest[stop_at:], self._sent + stop_at
        self._sent = self._base
        return True


def _sync_point(text: str, end: int, extents: list[tuple[int, int]], hold: int) -> int:
    """Where the kept text may start so that scanning it finds what scanning the whole text would.

    No raw match may span the cut (each pattern's scan restarts there), and the character before it
    must be one that no word-boundary or edge check reads differently from a start of text.
    """
    lo = max(0, end - _CONTEXT_CAP)
    near = [(s, e) for s, e in extents if e > lo and s < end]
    for c in range(end, lo, -1):
        if text[c - 1] in _NEUTRAL and not any(s < c < e for s, e in near):
            return c
    return 0 if end <= _CONTEXT_CAP else max(0, end - hold)  # no clean cut: keep a window (approximate)
