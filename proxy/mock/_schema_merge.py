"""Merge JSON Schemas that must all hold (allOf) into one schema, and resolve local `$ref`s."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

_LOWER_BOUNDS = frozenset(
    {"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains"}
)
_UPPER_BOUNDS = frozenset(
    {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains"}
)
_SUBSCHEMAS = frozenset(
    {"items", "additionalProperties", "contains", "propertyNames", "unevaluatedProperties"}
)
# Keywords that cannot be merged into one value: a second occurrence is deferred to a later allOf pass.
_DEFERRED = frozenset({"$ref", "$dynamicRef", "anyOf", "oneOf", "not", "if"})
_CONDITIONAL = ("if", "then", "else")


class Unsatisfiable(ValueError):
    """No value can satisfy the schema."""


def merge(parts: list[Any]) -> dict[str, Any]:
    """One schema equivalent to `allOf: parts` for generation purposes."""
    out: dict[str, Any] = {}
    for part in parts:
        if part is True:
            continue
        if part is False or not isinstance(part, Mapping):
            raise Unsatisfiable("a false schema admits no value")
        if "if" in part and "if" in out:
            out["allOf"] = [*out.get("allOf", []), {k: part[k] for k in _CONDITIONAL if k in part}]
            part = {k: v for k, v in part.items() if k not in _CONDITIONAL}
        for key, value in part.items():
            if key not in out:
                out[key] = value
            else:
                _merge_key(out, key, value)
    return out


def _merge_key(out: dict[str, Any], key: str, value: Any) -> None:
    current = out[key]
    if key == "properties":
        out[key] = {
            **current,
            **{n: {"allOf": [current[n], s]} if n in current else s for n, s in value.items()},
        }
    elif key == "required":
        out[key] = list(dict.fromkeys([*current, *value]))
    elif key == "allOf":
        out[key] = [*current, *value]
    elif key == "type":
        out[key] = _intersect_types(current, value)
    elif key == "enum":
        out[key] = [v for v in current if v in value]
    elif key in _LOWER_BOUNDS:
        out[key] = _bound(current, value, max)
    elif key in _UPPER_BOUNDS:
        out[key] = _bound(current, value, min)
    elif key in _SUBSCHEMAS:
        out[key] = False if current is False or value is False else {"allOf": [current, value]}
    elif key in _DEFERRED and current != value:
        out["allOf"] = [*out.get("allOf", []), {key: value}]


def _bound(current: Any, value: Any, pick: Any) -> Any:
    if isinstance(current, bool) or isinstance(value, bool):  # draft-4 boolean exclusive bounds
        return current or value
    return pick(current, value)


def _intersect_types(a: str | list[str], b: str | list[str]) -> list[str]:
    left = {a} if isinstance(a, str) else set(a)
    right = {b} if isinstance(b, str) else set(b)
    for one, other in ((left, right), (right, left)):
        if "number" in one and "integer" in other:
            one.add("integer")
    common = [t for t in (a if isinstance(a, list) else [a]) if t in right] or sorted(left & right)
    if not common:
        raise Unsatisfiable(f"no common type between {a!r} and {b!r}")
    return common


def resolve(root: Any, ref: str) -> Any:
    """The subschema a local `$ref` (JSON pointer, `$anchor` or embedded `$id`) points to."""
    base, _, fragment = ref.partition("#")
    node = root
    if base:
        node = next((s for key, s in _walk_ids(root) if key == base or key.endswith("/" + base)), None)
        if node is None:
            raise Unsatisfiable(f"cannot resolve $ref {ref!r} (only local references are supported)")
    if not fragment:
        return node
    if not fragment.startswith("/"):
        found = next((s for key, s in _walk_ids(node) if key == "#" + fragment), None)
        if found is None:
            raise Unsatisfiable(f"unknown anchor in $ref {ref!r}")
        return found
    for raw in fragment[1:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise Unsatisfiable(f"$ref {ref!r} points nowhere") from None
    return node


def _walk_ids(node: Any) -> Iterator[tuple[str, Any]]:
    """Yield (`$id` or `#anchor`, subschema) for every identified subschema under node."""
    if isinstance(node, Mapping):
        if isinstance(node.get("$id"), str):
            yield node["$id"].rstrip("#"), node
        for key in ("$anchor", "$dynamicAnchor"):
            if isinstance(node.get(key), str):
                yield "#" + node[key], node
        for child in node.values():
            yield from _walk_ids(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk_ids(child)
