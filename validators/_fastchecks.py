"""Building blocks of the compiled schema check: equality, combinators, object checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from validators.budget import tick

Check = Callable[[Any], bool]
PY_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "number": (int, float),
    "integer": (int,),
}
_NUMBERS = frozenset((int, float))
_PLAIN = frozenset((str, int, float, bool, type(None), list, dict))  # a str equals none of the others
_BOOL, _ARRAY, _OTHER = "bool", "array", "other"  # tags in canonical forms (a tagged tuple is no JSON value)


def _unbool(v: Any) -> Any:
    return ("bool", v) if v is True or v is False else v


def canonical(v: Any) -> Any:
    """A hashable stand-in that is equal for two values exactly when `equal` says they are.

    Strings, numbers and null stand for themselves (1 == 1.0 and their hashes agree; a string
    equals no number), booleans are tagged apart from 1 and 0, arrays become tagged tuples and
    objects frozensets of pairs (key order does not count).
    """
    kind = type(v)
    if kind is str or kind is int or kind is float or v is None:
        return v
    if kind is bool:
        return (_BOOL, v)
    if kind is list:
        return (_ARRAY, tuple(map(canonical, v)))
    if kind is dict:
        return frozenset([(k, canonical(x)) for k, x in v.items()])
    return (_OTHER, _unbool(v))


def all_unique(items: list[Any]) -> bool:
    """`uniqueItems` in O(n): hash canonical forms instead of comparing every pair (O(n^2))."""
    seen: set[Any] = set()
    for item in items:
        tick()
        key = canonical(item)
        if key in seen:
            return False
        seen.add(key)
    return True


def equal(a: Any, b: Any) -> bool:
    """jsonschema's equality: true is not 1, 1 is 1.0, containers compared deeply."""
    if a is b:
        return True
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(_unbool(a) == _unbool(b))


def all_of(checks: list[Check]) -> Check:
    """True when every check passes."""
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:  # the usual `type` plus one more keyword: no loop
        first, second = checks
        return lambda v: first(v) and second(v)

    def run(v: Any) -> bool:
        for c in checks:
            if not c(v):
                return False
        return True

    return run


def type_check(names: list[str]) -> Check:
    """The JSON Schema `type` keyword (an integral float counts as an integer)."""
    kinds = {PY_TYPES[n] for n in names}
    allowed = frozenset(t for kind in kinds for t in kind)
    if "integer" in names and "number" not in names:
        return lambda v: type(v) in allowed or (type(v) is float and v.is_integer())
    return lambda v: type(v) in allowed


def typed(names: list[str], rest: Check | None) -> Check:
    """The `type` keyword tested inline, then `rest` (the schema's other keywords) if the type is right."""
    if rest is None:
        return type_check(names)
    kinds = frozenset(t for n in names for t in PY_TYPES[n])
    if "integer" in names and "number" not in names:
        return lambda v: (type(v) in kinds or (type(v) is float and v.is_integer())) and rest(v)
    if len(kinds) == 1:
        (kind,) = kinds
        return lambda v: type(v) is kind and rest(v)
    return lambda v: type(v) in kinds and rest(v)


def any_of(subs: list[Check]) -> Check:
    """`anyOf` (each try counts against the budget: nested branches multiply)."""

    def check(v: Any) -> bool:
        tick()
        return any(c(v) for c in subs)

    return check


def one_of(subs: list[Check]) -> Check:
    """`oneOf`: exactly one passes."""

    def check(v: Any) -> bool:
        tick()
        return sum(1 for c in subs if c(v)) == 1

    return check


def bound(key: str, limit: Any) -> Check:
    """`minimum` and friends, written as "not failing" like jsonschema, so NaN passes in both."""
    if key == "minimum":
        return lambda v: type(v) not in _NUMBERS or not v < limit
    if key == "maximum":
        return lambda v: type(v) not in _NUMBERS or not v > limit
    if key == "exclusiveMinimum":
        return lambda v: type(v) not in _NUMBERS or not v <= limit
    return lambda v: type(v) not in _NUMBERS or not v >= limit


def among(options: list[Any]) -> Check:
    """`enum`; a string is looked up in a set when no option could equal a string but a string."""
    strings = frozenset(o for o in options if type(o) is str)
    if not strings or any(type(o) not in _PLAIN for o in options):
        return lambda v: any(equal(v, o) for o in options)
    return lambda v: v in strings if type(v) is str else any(equal(v, o) for o in options)


def every(items: Check) -> Check:
    """`items` without `prefixItems`: a plain loop, no slice, no generator."""

    def check(v: Any) -> bool:
        if type(v) is list:
            tick()
            for x in v:
                if not items(x):
                    return False
        return True

    return check


def plain_object(required: list[str], props: dict[str, Check], extra: Check | None) -> Check:
    """The common case: required, properties and additionalProperties only."""
    needed = frozenset(required)

    def check(v: Any) -> bool:
        if type(v) is not dict:
            return True
        tick()
        if not v.keys() >= needed:
            return False
        for key, value in v.items():
            sub = props.get(key)
            if sub is None:
                if extra is not None and not extra(value):
                    return False
            elif not sub(value):
                return False
        return True

    return check


def general_object(
    s: Mapping[str, Any], props: dict[str, Check], extra: Check | None, patterns: list[tuple[Any, Check]]
) -> Check:
    """Objects with patternProperties, dependentRequired or size bounds."""
    required = list(s.get("required", []))
    low, high = s.get("minProperties", 0), s.get("maxProperties", float("inf"))
    dependent = {k: list(v) for k, v in s.get("dependentRequired", {}).items()}

    def check(v: Any) -> bool:
        if type(v) is not dict:
            return True
        tick()
        if not low <= len(v) <= high or any(key not in v for key in required):
            return False
        if any(key in v and any(n not in v for n in names) for key, names in dependent.items()):
            return False
        for key, value in v.items():
            sub = props.get(key)
            if sub is not None and not sub(value):
                return False
            matched = False
            for found, pattern_sub in patterns:
                if found(key):
                    matched = True
                    if not pattern_sub(value):
                        return False
            if extra is not None and sub is None and not matched and not extra(value):
                return False
        return True

    return check
