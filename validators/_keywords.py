"""Our Draft 2020-12 jsonschema class: RE2 patterns, O(n) `uniqueItems`, a budget tick in every keyword."""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import extend

from validators._fastchecks import all_unique
from validators._re2 import searcher
from validators.budget import tick

__all__ = ["EXTENDED", "additional_keys"]

_Keyword = Callable[[Any, Any, Any, Any], Any]


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not searcher(patrn)(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Any, patterns: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in patterns.items():
        found = searcher(patrn)
        for key, value in instance.items():
            if found(key):
                yield from validator.descend(value, subschema, path=key, schema_path=patrn)


def additional_keys(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Keys of `instance` that neither `properties` nor `patternProperties` of `schema` cover."""
    props = schema.get("properties", {})
    found = [searcher(p) for p in schema.get("patternProperties", {})]
    return [k for k in instance if k not in props and not any(match(k) for match in found)]


def _additional_properties(validator: Any, ap: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = additional_keys(instance, schema)
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif ap is False and extras:
        names = ", ".join(repr(e) for e in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({names} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    # jsonschema compares every pair when items are not sortable (objects): 20,000 of them took minutes
    if unique and validator.is_type(instance, "array") and not all_unique(instance):
        yield ValidationError(f"{reprlib.repr(instance)} has non-unique elements")  # not 1 MB of repr


def _ticking(keyword: _Keyword) -> _Keyword:
    """`keyword`, counting one unit of the request's budget each time a subschema applies it."""

    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        tick()
        return keyword(validator, value, instance, schema)

    return run


_OURS: dict[str, _Keyword] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}
EXTENDED: Any = extend(
    Draft202012Validator,
    {name: _ticking(_OURS.get(name, fn)) for name, fn in Draft202012Validator.VALIDATORS.items()},
)
