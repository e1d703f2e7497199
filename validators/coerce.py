"""Schema-guided repair: small, named value changes that make a parsed document match its schema.

Each change fixes a local mismatch and is reported as `kind:/json/pointer`:
`coerce` ("42" -> 42, "true" -> true), `wrap` (scalar -> [scalar]), `drop` (a property that
`additionalProperties: false` forbids), `default` (a missing required property that declares a default),
`enum_case` ("High" -> "high" when exactly one enum value matches ignoring case), `nan_to_null`
(NaN/Infinity where null is allowed), `decode_string` (a whole document sent as a JSON string).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any

from validators._messages import pointer
from validators.base import strict_json
from validators.budget import tick
from validators.schema_cache import CompiledSchema, additional_keys

__all__ = ["coerce_document"]

_INT = re.compile(r"-?\d{1,30}(?:\.0+)?")
_NUM = re.compile(r"-?\d{1,30}(?:\.\d{1,30})?(?:[eE][+-]?\d{1,3})?")
_MAX_REF_HOPS = 32
_NO = object()


def _types(schema: Mapping[str, Any]) -> list[str] | None:
    t = schema.get("type")
    if isinstance(t, str):
        return [t]
    return [x for x in t if isinstance(x, str)] if isinstance(t, list) else None


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    if kind == "number":
        return not isinstance(value, bool) and isinstance(value, (int, float))
    return isinstance(value, {"string": str, "object": dict, "array": list}.get(kind, type(None)))


def _convert(value: Any, types: list[str]) -> tuple[Any, str] | None:
    if isinstance(value, str) and len(value) <= 80:
        s = value.strip()
        if "integer" in types and _INT.fullmatch(s):
            return int(s.split(".")[0]), "coerce"
        if "number" in types and _NUM.fullmatch(s):
            return (float(s) if any(c in s for c in ".eE") else int(s)), "coerce"
        if "boolean" in types and s.lower() in ("true", "false"):
            return s.lower() == "true", "coerce"
    if "array" in types and isinstance(value, (str, int, float, bool)):
        return [value], "wrap"
    return None


class _Coercer:
    def __init__(self, compiled: CompiledSchema) -> None:
        self.compiled = compiled
        self.changes: list[str] = []

    def note(self, kind: str, path: list[Any]) -> None:
        self.changes.append(f"{kind}:{pointer(path)}")

    def lookup(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        node: Any = self.compiled.schema
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def coerce(self, value: Any, schema: Any, path: list[Any], hops: int = 0) -> Any:
        if not isinstance(schema, Mapping) or hops > _MAX_REF_HOPS:
            return value
        tick()  # branches retried at every level multiply: the request's budget bounds them
        if "$ref" in schema:
            value = self.coerce(value, self.lookup(schema["$ref"]), path, hops + 1)
        for sub in schema.get("allOf", []) if isinstance(schema.get("allOf"), list) else []:
            value = self.coerce(value, sub, path, hops + 1)
        for kw in ("anyOf", "oneOf"):
            if isinstance(schema.get(kw), list):
                value = self.branches(value, schema[kw], path, hops + 1)
        value = self.scalar(value, schema, path)
        if isinstance(value, dict):
            self.obj(value, schema, path)
        elif isinstance(value, list):
            self.arr(value, schema, path)
        return value

    def branches(self, value: Any, options: list[Any], path: list[Any], hops: int) -> Any:
        if any(self.compiled.subschema_valid(value, b) for b in options):
            return value
        for branch in options:
            trial = _Coercer(self.compiled)
            candidate = trial.coerce(copy.deepcopy(value), branch, path, hops)
            if trial.changes and self.compiled.subschema_valid(candidate, branch):
                self.changes.extend(trial.changes)
                return candidate
        return value

    def scalar(self, value: Any, schema: Mapping[str, Any], path: list[Any]) -> Any:
        types = _types(schema)
        if isinstance(value, float) and not math.isfinite(value):
            if types is not None and "null" in types:
                self.note("nan_to_null", path)
                return None
            return value
        if types and not any(_is(value, t) for t in types):
            converted = _convert(value, types)
            if converted is not None:
                value, kind = converted
                self.note(kind, path)
        enum = schema.get("enum")
        if (
            isinstance(enum, list)
            and isinstance(value, str)
            and not any(type(e) is str and e == value for e in enum)
        ):
            folded = value.strip().casefold()
            matches = [e for e in enum if isinstance(e, str) and e.casefold() == folded]
            if len(matches) == 1:
                self.note("enum_case", path)
                value = matches[0]
        return value

    def obj(self, value: dict[str, Any], schema: Mapping[str, Any], path: list[Any]) -> None:
        raw_props = schema.get("properties")
        props: Mapping[str, Any] = raw_props if isinstance(raw_props, Mapping) else {}
        ap = schema.get("additionalProperties")
        extras = additional_keys(value, schema) if (ap is False or isinstance(ap, Mapping)) else []
        for key in list(value):
            if key in props:
                value[key] = self.coerce(value[key], props[key], [*path, key])
            elif key in extras and isinstance(ap, Mapping):
                value[key] = self.coerce(value[key], ap, [*path, key])
        if ap is False:
            for key in extras:
                del value[key]
                self.note("drop", [*path, key])
        raw_required = schema.get("required")
        for key in raw_required if isinstance(raw_required, list) else []:
            sub = props.get(key) if isinstance(key, str) else None
            if key not in value and isinstance(sub, Mapping) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
                self.note("default", [*path, key])

    def arr(self, value: list[Any], schema: Mapping[str, Any], path: list[Any]) -> None:
        raw_prefix = schema.get("prefixItems")
        prefix: list[Any] = raw_prefix if isinstance(raw_prefix, list) else []
        items = schema.get("items")
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else items
            value[i] = self.coerce(item, sub, [*path, i])


def _expects_container(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return False
    types = _types(schema) or []
    return "object" in types or "array" in types or "properties" in schema


def coerce_document(value: Any, compiled: CompiledSchema) -> tuple[Any, list[str]]:
    """A coerced deep copy of `value` and the changes made; the caller re-validates the result."""
    changes: list[str] = []
    if isinstance(value, str) and _expects_container(compiled.schema):
        try:
            inner = strict_json(value.strip())
        except ValueError:
            inner = _NO
        if isinstance(inner, (dict, list)):
            value = inner
            changes.append("decode_string")
    coercer = _Coercer(compiled)
    result = coercer.coerce(copy.deepcopy(value), compiled.schema, [])
    return result, changes + coercer.changes
