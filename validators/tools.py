"""The `tool_calls` validator: each call names a declared tool and its arguments match its schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from validators._messages import schema_violations, short
from validators._options import Options
from validators._scan import arguments_of, call_path
from validators.base import BuildContext, Output, RequestContext, Violation, strict_json
from validators.schema_cache import SchemaCache, SchemaProblem

__all__ = ["ToolCallsValidator", "parse_arguments", "tool_calls_factory"]


def parse_arguments(raw: Any) -> Any:
    """The parsed `arguments` string (an empty string counts as `{}`); raise ValueError when not JSON."""
    if not isinstance(raw, str):
        raise ValueError("arguments must be a JSON string")
    return {} if not raw.strip() else strict_json(raw)


def _name(call: Mapping[str, Any]) -> Any:
    fn = call.get("function")
    return fn.get("name") if isinstance(fn, Mapping) else None


class ToolCallsValidator:
    """Tool calls must name a tool the request declared, with arguments valid for its `parameters`."""

    type = "tool_calls"

    def __init__(self, cache: SchemaCache, on_fail: str | None = None) -> None:
        self.on_fail = on_fail
        self.schema_cache = cache

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        """Violations per call: undeclared name, arguments that are not JSON, schema mismatches."""
        out: list[Violation] = []
        declared = [fn.get("name") for t in ctx.tools if isinstance(fn := t.get("function"), Mapping)]
        forced = ctx.forced_tool_name()
        if not output.tool_calls and ctx.forces_tool_call():
            wanted = f"a call to {short(forced, 40)}" if forced else "a tool call (tool_choice: required)"
            message = f"the request asked for {wanted} but the answer has none"
            out.append(Violation(self.type, message, "/tool_calls"))
        for i, call in enumerate(output.tool_calls):
            name = _name(call)
            if forced is not None and name != forced and ctx.tool_schema(forced) is not None:
                out.append(
                    Violation(
                        self.type,
                        f"tool call #{i} ({short(name, 40)}) calls another tool than tool_choice names"
                        f" ({short(forced, 40)})",
                        f"/tool_calls/{i}/function/name",
                    )
                )
                continue
            schema = ctx.tool_schema(name) if isinstance(name, str) else None
            label = f"tool call #{i} ({short(name, 40)})"
            if schema is None:
                known = ", ".join(str(n) for n in declared) or "none"
                out.append(
                    Violation(
                        self.type,
                        f"{label} is not a declared tool (declared: {known})",
                        f"/tool_calls/{i}/function/name",
                    )
                )
                continue
            try:
                args = parse_arguments(arguments_of(call))
            except ValueError as exc:
                out.append(
                    Violation(self.type, f"{label}: the arguments are not valid JSON: {exc}", call_path(i))
                )
                continue
            try:
                compiled = self.schema_cache.get(schema)
            except SchemaProblem as exc:
                out.append(
                    Violation(
                        self.type,
                        f"{label}: the declared parameters schema cannot be used: {exc}",
                        call_path(i),
                    )
                )
                continue
            if not compiled.is_valid(args):
                for v in schema_violations(self.type, compiled.errors(args), prefix=call_path(i)):
                    out.append(Violation(self.type, f"{label}: {v.message}", v.path))
        return out


def tool_calls_factory(spec: Mapping[str, Any], context: BuildContext) -> ToolCallsValidator:
    """Build `type: tool_calls` (no options besides `on_fail`)."""
    opts = Options("tool_calls", spec, ())
    return ToolCallsValidator(context.schema_cache, opts.on_fail(("reject", "flag")))
