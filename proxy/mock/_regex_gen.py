"""Generate a string that matches a (simple) regular expression, for JSON Schema `pattern`."""

from __future__ import annotations

import importlib
import random
import re
from typing import Any

# The stdlib parser is private; it is stable enough for simple patterns and we verify every result.
_sre: Any = importlib.import_module("re._parser")

_PRINTABLE = [chr(c) for c in range(32, 127)]
_PREFERRED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def generate_match(pattern: str, rng: random.Random, *, extra_repeat: int = 3) -> str | None:
    """A string that `re.search(pattern, ...)` accepts, or None when the pattern is beyond us."""
    try:
        parsed = _sre.parse(pattern)
    except (re.error, RecursionError):
        return None
    groups: dict[int, str] = {}
    try:
        text = _emit(parsed, rng, groups, extra_repeat)
    except _Unsupported:
        return None
    return text if re.search(pattern, text) else None


class _Unsupported(Exception):
    """The pattern uses a construct the generator cannot satisfy."""


def _emit(items: Any, rng: random.Random, groups: dict[int, str], extra: int) -> str:
    return "".join(_emit_one(str(op), arg, rng, groups, extra) for op, arg in items)


def _emit_one(op: str, arg: Any, rng: random.Random, groups: dict[int, str], extra: int) -> str:
    if op == "LITERAL":
        return chr(arg)
    if op == "NOT_LITERAL":
        return rng.choice([c for c in _PREFERRED if ord(c) != arg])
    if op == "ANY":
        return rng.choice(_PREFERRED)
    if op == "IN":
        return _pick_from_set(arg, rng)
    if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        low, high, sub = arg
        high = low + extra if high == _sre.MAXREPEAT else min(high, low + extra)
        return "".join(_emit(sub, rng, groups, extra) for _ in range(rng.randint(low, high)))
    if op == "SUBPATTERN":
        group, _add, _del, sub = arg
        text = _emit(sub, rng, groups, extra)
        if group is not None:
            groups[group] = text
        return text
    if op == "ATOMIC_GROUP":
        return _emit(arg, rng, groups, extra)
    if op == "BRANCH":
        return _emit(rng.choice(arg[1]), rng, groups, extra)
    if op == "GROUPREF":
        return groups.get(arg, "")
    if op in ("AT", "ASSERT", "ASSERT_NOT"):
        return ""  # anchors emit nothing; look-arounds are checked by the final re.search
    raise _Unsupported(op)


def _pick_from_set(items: Any, rng: random.Random) -> str:
    negate = any(str(op) == "NEGATE" for op, _ in items)
    members = [c for c in _PRINTABLE if _in_set(c, items) != negate]
    if not members:
        raise _Unsupported("IN")
    preferred = [c for c in members if c in _PREFERRED]
    return rng.choice(preferred or members)


def _in_set(char: str, items: Any) -> bool:
    code = ord(char)
    for op, arg in items:
        name = str(op)
        if name == "LITERAL" and code == arg:
            return True
        if name == "RANGE" and arg[0] <= code <= arg[1]:
            return True
        if name == "CATEGORY" and _in_category(char, str(arg)):
            return True
    return False


def _in_category(char: str, category: str) -> bool:
    checks = {
        "CATEGORY_DIGIT": char.isdigit(),
        "CATEGORY_WORD": char.isalnum() or char == "_",
        "CATEGORY_SPACE": char.isspace(),
    }
    for name, value in checks.items():
        if category == name:
            return value
        if category == name.replace("CATEGORY_", "CATEGORY_NOT_"):
            return not value
    return False
