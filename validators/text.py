"""Plain-text validators: `regex` (deny / require), `phrases` (deny), `length`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from validators._holdback import alphabet_of, max_width, run_start
from validators._normalize import find_phrase, fold, fold_phrase
from validators._options import Options
from validators._re2 import UnsupportedPattern, compile_re2
from validators._scan import targets
from validators.base import BuildContext, Output, RequestContext, Span, ValidatorConfigError, Violation

__all__ = [
    "LengthValidator",
    "PhrasesValidator",
    "RegexValidator",
    "length_factory",
    "phrases_factory",
    "regex_factory",
]

REDACTED = "[REDACTED]"
_DEFAULT_WINDOW = 256


def _where(path: str | None) -> str:
    return "the output" if path is None else f"the tool-call argument at {path}"


class RegexValidator:
    """Deny patterns must not match anywhere; require patterns must match somewhere in the text."""

    type = "regex"

    def __init__(
        self, deny: list[str], require: list[str], on_fail: str | None = None, max_match: int | None = None
    ) -> None:
        self.deny = [(p, compile_re2(p)) for p in deny]
        self.require = [(p, compile_re2(p)) for p in require]
        self.on_fail = on_fail
        widths = [max_width(p) for p in deny]
        # An unbounded pattern is held by its alphabet's trailing run (see `pending`), unless the
        # operator bounds it with `max_match`, or its syntax is RE2-only (then a fixed window).
        pairs = [
            (w, None if w is not None or max_match else alphabet_of(p))
            for p, w in zip(deny, widths, strict=True)
        ]
        self._runs = [a for _, a in pairs if a is not None]
        bound = max_match or _DEFAULT_WINDOW
        self.window = max([w if w is not None else (0 if a else bound) for w, a in pairs], default=0)

    def find(self, text: str) -> list[Span]:
        """Every match of a deny pattern (empty matches ignored)."""
        spans = []
        for source, regex in self.deny:
            for m in regex.finditer(text):
                if m.end() > m.start():
                    msg = f"the output matches the denied pattern {source!r}"
                    spans.append(Span(m.start(), m.end(), REDACTED, "regex", msg))
        return spans

    def pending(self, text: str) -> int | None:
        """Where a match of an unbounded deny pattern may still be in progress at the end of `text`."""
        return min((s for s in (run_start(text, a) for a in self._runs) if s is not None), default=None)

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        """One violation per denied pattern found (per place) and per required pattern missing."""
        out: list[Violation] = []
        for path, text in targets(output):
            for source, regex in self.deny:
                if any(m.end() > m.start() for m in regex.finditer(text)):
                    out.append(
                        Violation(self.type, f"{_where(path)} matches the denied pattern {source!r}", path)
                    )
        if output.text is not None:
            for source, regex in self.require:
                if regex.search(output.text) is None:
                    out.append(
                        Violation(self.type, f"the output does not match the required pattern {source!r}")
                    )
        return out


class PhrasesValidator:
    """Denied phrases, matched as whole words after case and Unicode look-alike folding."""

    type = "phrases"

    def __init__(self, deny: list[str], on_fail: str | None = None) -> None:
        self.phrases = [(p, fold_phrase(p)) for p in deny]
        self.on_fail = on_fail
        self.window = max((2 * len(p) + 8 for p in deny), default=0)

    def find(self, text: str) -> list[Span]:
        """Every whole-word occurrence of a denied phrase."""
        folded, index = fold(text)
        spans = []
        for source, phrase in self.phrases:
            for start, end in find_phrase(folded, index, phrase):
                spans.append(
                    Span(start, end, REDACTED, "phrases", f"the output contains the denied phrase {source!r}")
                )
        return spans

    def pending(self, text: str) -> int | None:
        """Where a phrase may be starting at the very end of `text` (a stream must hold from there)."""
        folded, index = fold(text)
        starts = []
        for _, phrase in self.phrases:
            for k in range(min(len(phrase) - 1, len(folded)), 0, -1):
                if folded.endswith(phrase[:k]):
                    pos = len(folded) - k
                    starts.append(pos if index is None else index[pos])
                    break
        return min(starts, default=None)

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        """One violation per denied phrase found (per place)."""
        out = []
        for path, text in targets(output):
            folded, index = fold(text)
            for source, phrase in self.phrases:
                if find_phrase(folded, index, phrase):
                    out.append(
                        Violation(self.type, f"{_where(path)} contains the denied phrase {source!r}", path)
                    )
        return out


class LengthValidator:
    """Bounds on the answer text: characters, and tokens where a tokenizer is available."""

    type = "length"

    def __init__(
        self,
        max_chars: int | None = None,
        min_chars: int | None = None,
        max_tokens: int | None = None,
        token_counter: Callable[[str], int] | None = None,
        on_fail: str | None = None,
    ) -> None:
        self.max_chars = max_chars
        self.min_chars = min_chars
        self.max_tokens = max_tokens
        self.count_tokens = token_counter
        self.on_fail = on_fail

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        """Violations for text that is too long or too short."""
        if output.text is None:
            return []
        n = len(output.text)
        out = []
        if self.max_chars is not None and n > self.max_chars:
            out.append(
                Violation(
                    self.type, f"the output is {n:,} characters long; the maximum is {self.max_chars:,}"
                )
            )
        if self.min_chars is not None and n < self.min_chars:
            out.append(
                Violation(
                    self.type, f"the output is {n:,} characters long; the minimum is {self.min_chars:,}"
                )
            )
        if self.max_tokens is not None and self.count_tokens is not None:
            tokens = self.count_tokens(output.text)
            if tokens > self.max_tokens:
                out.append(
                    Violation(
                        self.type, f"the output is {tokens:,} tokens long; the maximum is {self.max_tokens:,}"
                    )
                )
        return out


def regex_factory(spec: Mapping[str, Any], context: BuildContext) -> RegexValidator:
    """Build `type: regex` (`deny`, `require`, optional `max_match` for streaming hold-back)."""
    opts = Options("regex", spec, ("deny", "require", "max_match"))
    deny, require = opts.str_list("deny"), opts.str_list("require")
    if not deny and not require:
        raise ValidatorConfigError("regex needs at least one pattern in 'deny' or 'require'", key="deny")
    for key, patterns in (("deny", deny), ("require", require)):
        for i, pattern in enumerate(patterns):
            try:
                compile_re2(pattern)
            except UnsupportedPattern as exc:
                raise ValidatorConfigError(f"invalid pattern {pattern!r}: {exc}", key=key, index=i) from None
    on_fail = opts.on_fail(("reject", "flag") if require else ("redact", "reject", "flag"))
    return RegexValidator(deny, require, on_fail, opts.int_or_none("max_match", minimum=1))


def phrases_factory(spec: Mapping[str, Any], context: BuildContext) -> PhrasesValidator:
    """Build `type: phrases` (`deny`)."""
    opts = Options("phrases", spec, ("deny",))
    deny = opts.str_list("deny")
    for i, phrase in enumerate(deny):
        if not fold_phrase(phrase):
            raise ValidatorConfigError("a denied phrase is empty", key="deny", index=i)
    if not deny:
        raise ValidatorConfigError("phrases needs at least one phrase in 'deny'", key="deny")
    return PhrasesValidator(deny, opts.on_fail())


def length_factory(spec: Mapping[str, Any], context: BuildContext) -> LengthValidator:
    """Build `type: length` (`max_chars`, `min_chars`, `max_tokens`; `on_fail: redact` truncates)."""
    opts = Options("length", spec, ("max_chars", "min_chars", "max_tokens", "encoding"))
    max_chars, min_chars = opts.int_or_none("max_chars"), opts.int_or_none("min_chars")
    max_tokens = opts.int_or_none("max_tokens", minimum=1)
    if max_chars is None and min_chars is None and max_tokens is None:
        raise ValidatorConfigError("length needs 'max_chars', 'min_chars' or 'max_tokens'", key="max_chars")
    counter = None
    if max_tokens is not None:
        encoding = opts.string("encoding", "cl100k_base") or "cl100k_base"
        counter = context.token_counter(encoding) if context.token_counter is not None else None
        if counter is None:
            raise ValidatorConfigError(
                f"max_tokens needs a tokenizer, and none is available here: install tiktoken and make its "
                f"'{encoding}' encoding available offline (TIKTOKEN_CACHE_DIR), or use max_chars",
                key="max_tokens",
            )
    elif opts.has("encoding"):
        raise ValidatorConfigError("'encoding' only applies with 'max_tokens'", key="encoding")
    on_fail = opts.on_fail(("redact", "reject", "flag") if max_chars is not None else ("reject", "flag"))
    return LengthValidator(max_chars, min_chars, max_tokens, counter, on_fail)
