"""Judging one completion against a policy: redact, check, repair; no upstream calls here.

Judging is CPU only and bounded by the request's `Budget` (`limits.validation_ms`). `judge_async`
keeps the event loop responsive: it judges inline for a short slice (most answers finish in well
under a millisecond), and a judgement that outlives the slice, or a large output, runs again in a
worker thread, where the interpreter's switch interval (5 ms) hands the loop the GIL between steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from validators import (
    Budget,
    Output,
    RequestContext,
    SchemaCache,
    SchemaProblem,
    Validator,
    Violation,
    check,
    redact,
    repair,
)
from validators import ValidationBudgetExceeded as _OverBudget
from validators.base import response_schema_of
from validators.budget import BudgetSlice

from .errors import InvalidRequest, ValidationBudgetExceeded

__all__ = ["Judgement", "judge", "judge_async", "output_of", "request_context"]

INLINE_SLICE = 0.02  # seconds of judging allowed on the event loop before moving to a thread
INLINE_MAX_CHARS = 256 * 1024  # larger outputs go to a thread at once (parsing alone costs milliseconds)


@dataclass
class Judgement:
    """The verdict on one completion (all its choices)."""

    completion: dict[str, Any]
    violations: list[Violation] = field(default_factory=list)  # still blocking after repair
    rejected: list[Violation] = field(default_factory=list)  # from validators with on_fail: reject
    flagged: list[Violation] = field(default_factory=list)  # from validators with on_fail: flag
    repaired: list[Violation] = field(default_factory=list)  # found, then repaired away
    repairs: list[str] = field(default_factory=list)
    redactions: list[str] = field(default_factory=list)
    invalid_output: Output | None = None
    raw: Mapping[str, Any] | None = None  # the provider's completion as judged (before redaction, repair)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.rejected


def request_context(
    response_format: Mapping[str, Any] | None,
    tools: Sequence[Mapping[str, Any]],
    *,
    schemas: SchemaCache,
    validation_ms: float,
    tool_choice: Any = None,
) -> RequestContext:
    """The request's validation context with a fresh budget; 400 for a schema that refers outside itself.

    Checked whatever the policy, before any upstream call: a schema is never fetched, and a bad one
    is the client's error, not a violation found later (nor a 500 from a tool's schema).
    """
    schema = response_schema_of(response_format)
    compiled = None if schema is None else _vetted(schemas, "response_format.json_schema.schema", schema)
    tools = tuple(tools)
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        params = fn.get("parameters") if isinstance(fn, Mapping) else None
        if params is not None:
            _vetted(schemas, f"tools[{i}].function.parameters", params)
    return RequestContext(
        response_format=response_format,
        tools=tools,
        budget=Budget(validation_ms),
        tool_choice=tool_choice,
        response_compiled=compiled,
    )


def _vetted(schemas: SchemaCache, param: str, schema: Any) -> Any:
    """`schemas.vet(schema)`, a refusal as the request's 400 naming `param`."""
    try:
        return schemas.vet(schema)
    except SchemaProblem as exc:
        raise InvalidRequest(f"`{param}` cannot be used: {exc}.", param=param) from None


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
    """Redact, check and (when allowed) repair every choice of `completion`, within `ctx.budget`."""
    if ctx.budget is None:
        return _judge(completion, validators, ctx, allow_repair)
    try:
        with ctx.budget.running():
            return _judge(completion, validators, ctx, allow_repair)
    except _OverBudget as exc:
        raise ValidationBudgetExceeded(exc.limit_ms) from None


async def judge_async(
    completion: Mapping[str, Any], validators: Sequence[Validator], ctx: RequestContext, *, allow_repair: bool
) -> Judgement:
    """`judge`, never holding the event loop for more than about INLINE_SLICE."""
    if ctx.budget is not None and _size(completion) <= INLINE_MAX_CHARS:
        try:
            with ctx.budget.running(INLINE_SLICE):
                return _judge(completion, validators, ctx, allow_repair)
        except BudgetSlice:
            pass  # judging is pure (it works on copies): start over off the loop with what is left
        except _OverBudget as exc:
            raise ValidationBudgetExceeded(exc.limit_ms) from None
    return await asyncio.to_thread(judge, completion, validators, ctx, allow_repair=allow_repair)


def _size(completion: Mapping[str, Any]) -> int:
    """Characters of text and tool-call arguments in the completion (what parsing and checks walk)."""
    total = 0
    for choice in completion.get("choices") or ():
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        total += len(content) if isinstance(content, str) else 0
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, Mapping) else None
            args = fn.get("arguments") if isinstance(fn, Mapping) else None
            total += len(args) if isinstance(args, str) else 0
    return total


def _judge(
    completion: Mapping[str, Any], validators: Sequence[Validator], ctx: RequestContext, allow_repair: bool
) -> Judgement:
    result = Judgement(completion=_copy_messages(completion), raw=completion)
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
                result.repaired.extend(violations)
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
