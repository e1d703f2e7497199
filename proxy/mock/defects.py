"""Break valid JSON the way real models do, for `mock/broken-json`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.mock._schema_merge import Unsatisfiable, resolve

__all__ = ["DEFAULT_SCHEMA", "DEFECTS", "break_json"]

DEFECTS = (
    "fence",
    "prose",
    "trailing_comma",
    "single_quotes",
    "truncated",
    "wrong_types",
    "missing_required",
    "extra_fields",
)
# The answer's shape when the request carries no schema.
DEFAULT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 18, "maximum": 90},
        "active": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
    },
    "required": ["name", "age", "active", "tags"],
    "additionalProperties": False,
}
EXTRA_FIELD = ("unexpected_field", "surprise")


def break_json(value: Any, defect: str, schema: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """(text, finish_reason): `value` serialized with `defect` applied."""
    pretty = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    if defect == "fence":
        return f"```json\n{pretty}\n```", "stop"
    if defect == "prose":
        return (
            f"Sure! Here is the JSON you asked for:\n\n{pretty}\n\nLet me know if you need anything else.",
            "stop",
        )
    if defect == "trailing_comma":
        return _render(value, quote='"', trailing=True), "stop"
    if defect == "single_quotes":
        return _render(value, quote="'", trailing=False), "stop"
    text = orjson.dumps(value).decode()
    if defect == "truncated":
        return text[: max(1, len(text) * 2 // 3)], "length"
    if defect == "wrong_types":
        return orjson.dumps(_stringify(value)).decode(), "stop"
    if defect == "missing_required":
        return orjson.dumps(_drop_required(value, schema or DEFAULT_SCHEMA)).decode(), "stop"
    if defect == "extra_fields":
        return orjson.dumps(_add_extra(value)).decode(), "stop"
    raise ValueError(f"unknown defect {defect!r}")


def _render(value: Any, *, quote: str, trailing: bool) -> str:
    """JSON-like text with a chosen string quote and, optionally, a trailing comma in every container."""
    comma = "," if trailing else ""
    if isinstance(value, dict):
        items = [
            f"{_quote(str(k), quote)}: {_render(v, quote=quote, trailing=trailing)}" for k, v in value.items()
        ]
        return "{" + ", ".join(items) + (comma if items else "") + "}"
    if isinstance(value, list):
        items = [_render(v, quote=quote, trailing=trailing) for v in value]
        return "[" + ", ".join(items) + (comma if items else "") + "]"
    if isinstance(value, str):
        return _quote(value, quote)
    return json.dumps(value)


def _quote(text: str, quote: str) -> str:
    if quote == '"':
        return json.dumps(text)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _stringify(value: Any) -> Any:
    """Numbers and booleans as strings ("42", "true"), at every depth."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    return value


def _first_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return next((v for v in value if isinstance(v, dict)), None)
    return None


def _drop_required(value: Any, schema: Mapping[str, Any]) -> Any:
    """Remove the first required property present (the first property when none is required)."""
    value = json.loads(json.dumps(value))  # deep copy
    target = _first_object(value)
    if target:
        required = [name for name in _required(schema) if name in target]
        del target[required[0] if required else next(iter(target))]
    return value


def _required(schema: Any) -> list[str]:
    node = schema
    try:
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            node = resolve(schema, node["$ref"])
    except Unsatisfiable:
        return []
    if not isinstance(node, Mapping):
        return []
    if node.get("type") == "array" and isinstance(node.get("items"), Mapping):
        return _required({**schema, **node["items"]})
    names = list(node.get("required") or [])
    for part in node.get("allOf") or []:
        if isinstance(part, Mapping):
            names += part.get("required") or []
    return names


def _add_extra(value: Any) -> Any:
    value = json.loads(json.dumps(value))
    target = _first_object(value)
    if target is not None:
        target[EXTRA_FIELD[0]] = EXTRA_FIELD[1]
    return value
