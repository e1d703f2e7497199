"""Redaction: apply every validator whose `on_fail` is `redact` (placeholders, or truncation for length)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from validators._scan import map_json_text, map_strings
from validators._spans import apply_spans
from validators.base import Output, RequestContext, SpanValidator, Validator, finds_spans
from validators.text import LengthValidator

__all__ = ["redact"]


def _redact_with(validator: SpanValidator, output: Output, names: dict[str, None]) -> Output:
    def fix(text: str) -> str:
        spans = validator.find(text)
        for span in spans:
            names.setdefault(span.name, None)
        return apply_spans(text, spans) if spans else text

    tool_calls = map_strings(replace(output, text=None), fix).tool_calls
    text = output.text
    new_text = fix(text) if text else text
    if new_text == text:  # nothing found: keep `output`, and the JSON it has parsed already
        return output if tool_calls == output.tool_calls else replace(output, tool_calls=tool_calls)
    redacted = replace(output, text=new_text, tool_calls=tool_calls)
    if output.json_error() is None and redacted.json_error() is not None:
        # The raw replacement broke valid JSON: redact inside the decoded strings instead.
        redacted = replace(output, text=map_json_text(text or "", fix), tool_calls=tool_calls)
    return redacted  # its parse is kept for the checks that follow


def redact(validators: Sequence[Validator], output: Output, ctx: RequestContext) -> tuple[Output, list[str]]:
    """The output with redact-mode findings replaced, and what was redacted (`pii:email`, `phrases`, ...)."""
    names: dict[str, None] = {}
    for validator in validators:
        if validator.on_fail != "redact":
            continue
        if isinstance(validator, LengthValidator):
            limit = validator.max_chars
            if limit is not None and output.text is not None and len(output.text) > limit:
                output = replace(output, text=output.text[:limit])
                names.setdefault("length:truncated", None)
        elif finds_spans(validator):
            output = _redact_with(validator, output, names)
    return output, list(names)
