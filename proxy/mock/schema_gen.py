"""Deterministic JSON values valid for a JSON Schema (Draft 2020-12, older spellings tolerated)."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.mock._formats import word
from proxy.mock._regex_gen import generate_match
from proxy.mock._scalars import has_type, number_value, string_value
from proxy.mock._schema_merge import Unsatisfiable, merge, resolve

__all__ = ["SchemaGenError", "generate"]

SOFT_DEPTH = 4  # from here on: required properties only, minItems, null / non-recursive branches first
HARD_DEPTH = 64
_MAX_STEPS = 64
_BRANCHES = ("anyOf", "oneOf")


class SchemaGenError(Unsatisfiable):
    """The schema admits no value the generator can find (unsatisfiable, or a non-local $ref)."""


def generate(schema: Mapping[str, Any] | bool, seed: int = 0) -> Any:
    """A JSON value valid against `schema`; the same schema and seed always give the same value."""
    try:
        return _Generator(schema, seed).value(schema, 0)
    except SchemaGenError:
        raise
    except Exception as exc:  # a malformed schema (wrong keyword types, bad regex, ...) is unsatisfiable too
        raise SchemaGenError(f"cannot generate a value: {exc}") from None


class _Generator:
    def __init__(self, root: Any, seed: int) -> None:
        self._root = root
        self._rng = random.Random(seed)
        self._validator: Any = None

    def value(self, schema: Any, depth: int) -> Any:
        if depth > HARD_DEPTH:
            raise SchemaGenError("the schema's recursion has no finite instance")
        if schema is True or schema == {}:
            return word(self._rng)
        if not isinstance(schema, Mapping):
            raise SchemaGenError("a false schema admits no value")
        schema = self._flatten(schema)
        for key in _BRANCHES:
            if key in schema:
                return self._branch(schema, key, depth)
        if "if" in schema:
            return self._conditional(schema, depth)
        if "not" in schema:
            return self._avoiding(schema, depth)
        return self._plain(schema, depth)

    def _flatten(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """Resolve `$ref` and merge `allOf` until a branch keyword or a plain schema remains."""
        for _ in range(_MAX_STEPS):
            ref = schema.get("$ref", schema.get("$dynamicRef"))
            if isinstance(ref, str):
                rest = {k: v for k, v in schema.items() if k not in ("$ref", "$dynamicRef")}
                schema = merge([resolve(self._root, ref), rest])
            elif any(key in schema for key in _BRANCHES):
                return schema
            elif "allOf" in schema:
                base = {k: v for k, v in schema.items() if k != "allOf"}
                schema = merge([base, *schema["allOf"]])
            else:
                return schema
        raise SchemaGenError("too many nested $ref / allOf indirections")

    def _branch(self, schema: Mapping[str, Any], key: str, depth: int) -> Any:
        branches = list(schema[key])
        base = {k: v for k, v in schema.items() if k != key}
        start = self._rng.randrange(len(branches)) if branches else 0
        order = branches[start:] + branches[:start]
        if depth >= SOFT_DEPTH:
            order.sort(key=_recursion_weight)
        last_error: Exception = SchemaGenError(f"no {key} branch admits a value")
        for branch in order:
            try:
                candidate = self.value(merge([base, branch]), depth + 1)
            except Unsatisfiable as exc:
                last_error = exc
                continue
            if key == "anyOf" or not any(self._valid(o, candidate) for o in branches if o is not branch):
                return candidate
        raise SchemaGenError(str(last_error))

    def _conditional(self, schema: Mapping[str, Any], depth: int) -> Any:
        base = {k: v for k, v in schema.items() if k not in ("if", "then", "else")}
        condition = schema["if"]
        try:
            return self.value(merge([base, condition, schema.get("then", True)]), depth)
        except Unsatisfiable:
            candidate = self.value(merge([base, schema.get("else", True)]), depth)
        if self._valid(condition, candidate):
            raise SchemaGenError("cannot satisfy the schema's if/then/else")
        return candidate

    def _avoiding(self, schema: Mapping[str, Any], depth: int) -> Any:
        base = {k: v for k, v in schema.items() if k != "not"}
        for _ in range(8):
            candidate = self.value(base, depth)
            if not self._valid(schema["not"], candidate):
                return candidate
        raise SchemaGenError("cannot find a value the schema's `not` allows")

    def _valid(self, subschema: Any, instance: Any) -> bool:
        if self._validator is None:
            import jsonschema  # only for oneOf / not / if: checked against the root so $refs resolve

            cls = jsonschema.validators.validator_for(self._root, default=jsonschema.Draft202012Validator)
            self._validator = cls(self._root)
        return bool(self._validator.evolve(schema=subschema).is_valid(instance))

    def _plain(self, schema: Mapping[str, Any], depth: int) -> Any:
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            allowed = [v for v in schema["enum"] if has_type(v, schema.get("type"))]
            if not allowed:
                raise SchemaGenError("no enum value has an allowed type")
            return self._rng.choice(allowed)
        kind = self._type(schema, depth)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return string_value(schema, self._rng)
        if kind in ("integer", "number"):
            return number_value(schema, self._rng, integer=kind == "integer")
        if kind == "boolean":
            return self._rng.random() < 0.5
        return None

    def _type(self, schema: Mapping[str, Any], depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared
        if isinstance(declared, list) and declared:
            others = [t for t in declared if t != "null"]
            return "null" if not others or depth >= SOFT_DEPTH and "null" in declared else str(others[0])
        for kind, keys in _INFERRED:
            if any(k in schema for k in keys):
                return kind
        return "string"

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        props: Mapping[str, Any] = schema.get("properties") or {}
        required: list[str] = list(schema.get("required") or [])
        names = [p for p in props if depth < SOFT_DEPTH or p in required]
        names += [r for r in required if r not in names]
        for name in names:
            names += [d for d in schema.get("dependentRequired", {}).get(name, []) if d not in names]
        out: dict[str, Any] = {}
        for name in names:
            try:
                out[name] = self.value(self._property_schema(schema, name), depth + 1)
            except Unsatisfiable:
                if name in required:
                    raise
        limit = schema.get("maxProperties")
        for name in [n for n in reversed(list(out)) if n not in required]:
            if limit is None or len(out) <= limit:
                break
            del out[name]
        unused = [p for p in props if p not in out]
        for index in range(len(unused) + 64):
            if len(out) >= schema.get("minProperties", 0):
                break
            name = unused[index] if index < len(unused) else self._extra_name(schema, f"extra_{index}")
            if name not in out:
                out[name] = self.value(self._property_schema(schema, name), depth + 1)
        return out

    def _property_schema(self, schema: Mapping[str, Any], name: str) -> Any:
        if name in (schema.get("properties") or {}):
            return schema["properties"][name]
        for pattern, sub in (schema.get("patternProperties") or {}).items():
            if re.search(pattern, name):
                return sub
        extra = schema.get("additionalProperties", True)
        return {} if extra is True else extra

    def _extra_name(self, schema: Mapping[str, Any], fallback: str) -> str:
        names = schema.get("propertyNames")
        if isinstance(names, Mapping):
            return str(self.value(merge([{"type": "string"}, names]), HARD_DEPTH))
        for pattern in schema.get("patternProperties") or {}:
            if schema.get("additionalProperties", True) is not True:
                return generate_match(pattern, self._rng) or fallback
        return fallback

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix, items = list(schema.get("prefixItems") or []), schema.get("items", True)
        if isinstance(items, list):
            prefix, items = items, schema.get("additionalItems", True)
        low, high = int(schema.get("minItems", 0)), schema.get("maxItems")
        contains, needed = schema.get("contains"), 0
        if contains is not None:
            needed = int(schema.get("minContains", 1))
        size = max(low, needed, low if depth >= SOFT_DEPTH else self._rng.randint(1, 2))
        size = min(size, high) if high is not None else size
        if items is False:
            size = min(size, len(prefix))
        if size < low:
            raise SchemaGenError("minItems cannot be met")
        out: list[Any] = []
        seen: set[bytes] = set()
        unique = schema.get("uniqueItems") is True
        for index in range(size):
            sub = prefix[index] if index < len(prefix) else items
            if index >= len(prefix) and index - len(prefix) < needed:
                sub = merge([items, contains])
            for _ in range(12 if unique else 1):
                item = self.value(sub, depth + 1)
                key = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
                if key not in seen:
                    break
            else:
                if len(out) >= low:
                    break
                raise SchemaGenError("cannot generate enough unique items")
            seen.add(key)
            out.append(item)
        return out


_INFERRED = (
    ("object", ("properties", "required", "additionalProperties", "patternProperties", "minProperties")),
    ("array", ("items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems")),
    ("string", ("minLength", "maxLength", "pattern", "format")),
    ("number", ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")),
)


def _recursion_weight(branch: Any) -> int:
    """Sort key: null branches first, then branches without references, then the rest."""
    if isinstance(branch, Mapping) and branch.get("type") == "null":
        return 0
    return 2 if b"$ref" in orjson.dumps(branch) else 1
