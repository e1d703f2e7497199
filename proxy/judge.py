"""Judging one completion against a policy: redact, check, repair; no upstream calls here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from validators import Output, RequestContext, Validator, Violation, check, redact, repair

__all__ = ["Judgement", "judge", "output_of"]


@dataclass
class Judgement:
    """The verdict on one completion (all its choices)."""

    completion: dict[str, Any]
    violations: list[Violation] = field(default_factory=list)  # still blocking after repair
    rejected: list[Violation] = field(default_factory=list)  # from validators with on_fail: reject
    flagged: list[Violation] = field(default_factory=list)  # from validators with on_fail: flag
    repairs: list[str] = field(default_factory=list)
    redactions: list[str] = field(default_factory=list)
    invalid_output: Output | None = None

    @property
    def ok(self) -> bool:
        return not self.violations and not self.rejected


def output_of(message: Mapping[str, Any], finish_reason: str | None = None) -> Output:
    """The validator view of an assistant message (`finish_reason` "length" forbids closing a cut answer)."""
    content = message.get("content")
    text = content if isinstance(content, str) else None
    return Output(text=text, tool_calls=tuple(message.get("tool_calls") or ()), finish_reason=finish_reason)


def _write_back(message: dict[str, Any], output: Output) -> None:
    if output.text is not None or message.get("content") is not None:
        message["content"] = output.text
    if output.tool_calls:
        message["tool_calls"] = [dict(c) for c in output.tool_calls]


def _copy_messages(completion: Mapping[str, Any]) -> dict[str, Any]:
    """A copy deep enough to rewrite messages without touching the provider's dict."""
    copied = dict(completion)
    choices = completion.get("choices") or ()
    copied["choices"] = [{**c, "message": dict(c.get("message") or {})} for c in choices]
    return copied


def judge(
    completion: Mapping[str, Any], validators: Sequence[Validator], ctx: RequestContext, *, allow_repair: bool
) -> Judgement:
    """Redact, check and (when allowed) repair every choice of `completion`."""
    result = Judgement(completion=_copy_messages(completion))
    redacting = any(v.on_fail == "redact" for v in validators)
    for choice in result.completion.get("choices") or ():
        message = choice.setdefault("message", {})
        output = output_of(message, choice.get("finish_reason"))
        if redacting:
            output, names = redact(validators, output, ctx)
            result.redactions.extend(names)
        violations: list[Violation] = []
        flagged_before = len(result.flagged)  # flags are only appended until the repair below
        for validator in validators:
            found = check((validator,), output, ctx)  # a crashing plugin counts as a violation
            if not found:
                continue
            if validator.on_fail == "flag":
                result.flagged.extend(found)
            elif validator.on_fail == "reject":
                result.rejected.extend(found)
            else:
                violations.extend(found)
        if violations and allow_repair and not result.rejected:
            fixed = repair([v for v in validators if v.on_fail != "flag"], output, ctx)
            if fixed is not None:
                output = fixed.output
                result.repairs.extend(fixed.changes)
                violations = []
                still = check(validators, output, ctx)
                result.flagged = result.flagged[:flagged_before] + [
                    v for v in result.flagged[flagged_before:] if v in still
                ]
        if violations:
            result.violations.extend(violations)
            result.invalid_output = result.invalid_output or output
        _write_back(message, output)
    return result
