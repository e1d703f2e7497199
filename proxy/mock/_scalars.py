"""Strings and numbers for JSON Schema leaves: formats, patterns, lengths, bounds, multipleOf."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from proxy.mock._formats import FORMATS, word
from proxy.mock._regex_gen import generate_match
from proxy.mock._schema_merge import Unsatisfiable

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def string_value(schema: Mapping[str, Any], rng: random.Random) -> str:
    """A string meeting `pattern` (when simple), `format`, `minLength` and `maxLength`."""
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    pattern, fmt = schema.get("pattern"), schema.get("format")
    for attempt in range(16):
        if isinstance(pattern, str):
            text = generate_match(pattern, rng, extra_repeat=3 + attempt * 2)
            if text is None:
                raise Unsatisfiable(f"cannot generate a string matching pattern {pattern!r}")
        elif fmt in FORMATS and attempt < 8:
            text = FORMATS[fmt](rng)
        else:
            text = _sized_word(rng, low, high)
        if len(text) >= low and (high is None or len(text) <= high):
            return text
    raise Unsatisfiable("cannot meet the string's length bounds")


def _sized_word(rng: random.Random, low: int, high: int | None) -> str:
    text = word(rng)
    size = max(low, len(text) if high is None else min(len(text), high))
    return (text * (1 + size // len(text)))[:size]


def number_value(schema: Mapping[str, Any], rng: random.Random, *, integer: bool) -> int | float:
    """A number (non-integral when it can be) or integer within the bounds, honouring `multipleOf`."""
    low, high = _bounds(schema, integer)
    step = schema.get("multipleOf")
    if step:
        first, last = math.ceil(low / step), math.floor(high / step)
        for k in rng.sample(range(first, last + 1), min(8, max(0, last - first + 1))):
            value = k * step
            if float(value / step).is_integer() and low <= value <= high:
                return int(value) if integer or isinstance(value, int) else value
        raise Unsatisfiable("no multiple of multipleOf fits the bounds")
    if integer:
        if math.ceil(low) > math.floor(high):
            raise Unsatisfiable("no integer fits the bounds")
        return rng.randint(math.ceil(low), math.floor(high))
    value = round(low + (high - low) * rng.random(), 2)
    return value if low <= value <= high else (low + high) / 2


def has_type(value: Any, declared: Any) -> bool:
    """Whether a JSON value has one of the declared JSON Schema types (None: any)."""
    if declared is None:
        return True
    kinds = [declared] if isinstance(declared, str) else list(declared)
    for kind in kinds:
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            return True
        if isinstance(value, _PY_TYPES.get(kind, ())) and not (kind != "boolean" and isinstance(value, bool)):
            return True
    return False


def _bounds(schema: Mapping[str, Any], integer: bool) -> tuple[float, float]:
    """Inclusive (low, high), defaulting to a range of 100 next to the one bound given."""
    gap = 1 if integer else 0.01
    low = _limit(schema, "minimum", "exclusiveMinimum", gap)
    high = _limit(schema, "maximum", "exclusiveMaximum", -gap)
    if low is None and high is None:
        low, high = 0, 100
    elif low is None:
        low = high - 100 if high is not None else 0
    elif high is None:
        high = low + 100
    if high is None or low > high:
        raise Unsatisfiable("the number's bounds leave no value")
    return low, high


def _limit(schema: Mapping[str, Any], inclusive: str, exclusive: str, gap: float) -> float | None:
    """One bound: the tighter of `inclusive` and `exclusive` (moved inward by gap); draft-4 booleans too."""
    bound, strict = schema.get(inclusive), schema.get(exclusive)
    if strict is True and bound is not None:
        return float(bound + gap)
    if isinstance(strict, int | float) and not isinstance(strict, bool):
        moved = strict + gap
        return float(moved if bound is None else max(bound, moved) if gap > 0 else min(bound, moved))
    return None if bound is None else float(bound)
