"""Deterministic repair: JSON syntax repair plus schema coercion, kept only if every validator then passes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from validators._scan import arguments_of
from validators.base import Output, RequestContext, Validator
from validators.coerce import coerce_document
from validators.engine import check
from validators.json_schema import JsonSchemaValidator
from validators.json_text import Refused, recover_json
from validators.schema_cache import CompiledSchema, SchemaCache, SchemaProblem
from validators.tools import ToolCallsValidator, parse_arguments

__all__ = ["RepairResult", "repair"]

_JSON_TYPES = ("json", "json_schema")


@dataclass(frozen=True)
class RepairResult:
    """The repaired output and the short names of what changed (`fence`, `trailing_comma`, `coerce:/age`)."""

    output: Output
    changes: tuple[str, ...]


def _expect(schemas: Sequence[CompiledSchema]) -> str | None:
    for compiled in schemas:
        schema = compiled.schema
        types = schema.get("type") if isinstance(schema, Mapping) else None
        if types in ("object", "array"):
            return str(types)
    return None


def _fix(text: str, schemas: Sequence[CompiledSchema], cut: bool = False) -> tuple[str, list[str]]:
    """Repaired JSON text and its changes; raise Refused (or ValueError for NaN left over)."""
    recovered = recover_json(text, _expect(schemas), allow_truncated=not cut)
    value: Any = recovered.value
    changes = list(recovered.changes)
    for compiled in schemas:
        value, more = coerce_document(value, compiled)
        changes.extend(more)
    fixed = json.dumps(value, ensure_ascii=False, allow_nan=False)
    fixed.encode("utf-8")  # a lone surrogate from a \ud800 escape raises here, not in the server
    return fixed, changes


def _cache_of(validators: Sequence[Validator]) -> SchemaCache:
    for v in validators:
        if isinstance(v, (JsonSchemaValidator, ToolCallsValidator)):
            return v.schema_cache
    return SchemaCache(maxsize=8)


def _text_schemas(validators: Sequence[Validator], ctx: RequestContext) -> list[CompiledSchema]:
    found = [v.compiled_for(ctx) for v in validators if isinstance(v, JsonSchemaValidator)]
    return [c for c in found if c is not None]


def _repair_calls(
    output: Output, ctx: RequestContext, cache: SchemaCache
) -> tuple[tuple[Any, ...], list[str]]:
    calls: list[Any] = []
    changes: list[str] = []
    for i, call in enumerate(output.tool_calls):
        fn = call.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        schema = ctx.tool_schema(name) if isinstance(name, str) else None
        raw = arguments_of(call)
        if schema is None or not isinstance(raw, str) or not isinstance(fn, Mapping):
            calls.append(call)
            continue
        compiled = cache.get(schema)
        try:
            if compiled.is_valid(parse_arguments(raw)):
                calls.append(call)
                continue
        except ValueError:
            pass
        fixed, made = _fix(raw, [compiled], cut=output.finish_reason == "length")
        calls.append({**call, "function": {**fn, "arguments": fixed}})
        changes.extend(f"tool_calls/{i}:{c}" for c in made)
    return tuple(calls), changes


def repair(validators: Sequence[Validator], output: Output, ctx: RequestContext) -> RepairResult | None:
    """The repaired output when safe repairs make it pass every validator; else None."""
    cache = _cache_of(validators)
    changes: list[str] = []
    text, calls = output.text, output.tool_calls
    try:
        json_checks = [v for v in validators if v.type in _JSON_TYPES]
        if json_checks and text is not None and check(json_checks, output, ctx):
            text, made = _fix(text, _text_schemas(validators, ctx), output.finish_reason == "length")
            changes.extend(made)
        if calls and any(v.type == "tool_calls" for v in validators):
            calls, made = _repair_calls(output, ctx, cache)
            changes.extend(made)
    except (Refused, SchemaProblem, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return None
    repaired = Output(text=text, tool_calls=calls, finish_reason=output.finish_reason)
    if check(validators, repaired, ctx):
        return None
    return RepairResult(repaired, tuple(changes))
