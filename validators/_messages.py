"""Plain-language messages and JSON Pointer paths for JSON Schema errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match

from validators.base import Violation
from validators.schema_cache import additional_keys

_MAX_VIOLATIONS = 25
_TYPE_NAMES: dict[type, str] = {
    bool: "boolean",
    type(None): "null",
    dict: "object",
    list: "array",
    str: "string",
}


def pointer(parts: Iterable[Any]) -> str:
    """RFC 6901 JSON Pointer for a path of keys and indexes ('' is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def json_type(value: Any) -> str:
    """The JSON type name of a Python value."""
    for kind, name in _TYPE_NAMES.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return type(value).__name__


def short(value: Any, limit: int = 60) -> str:
    """A compact JSON rendering of `value`, cut to `limit` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(path: str) -> str:
    return f"at {path}" if path else "the document"


def _one_of(values: Iterable[Any]) -> str:
    return ", ".join(short(v, 40) for v in values)


def _describe(err: ValidationError, path: str) -> str:
    kw, expected, got = err.validator, err.validator_value, err.instance
    where = _where(path)
    if kw == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"{where}: expected {wanted}, got {json_type(got)} {short(got)}"
    if kw == "enum":
        return f"{where}: must be one of {_one_of(expected)}; got {short(got)}"
    if kw == "const":
        return f"{where}: must be exactly {short(expected)}; got {short(got)}"
    if kw == "format":
        return f"{where}: {short(got)} is not a valid {expected}"
    if kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[str(kw)]
        return f"{where}: must be {sign} {expected}; got {short(got)}"
    if kw in ("minLength", "maxLength"):
        word = "at least" if kw == "minLength" else "at most"
        return f"{where}: must be {word} {expected} characters long; got {len(got)}"
    if kw in ("minItems", "maxItems"):
        word = "at least" if kw == "minItems" else "at most"
        return f"{where}: must have {word} {expected} items; got {len(got)}"
    if kw in ("minProperties", "maxProperties"):
        word = "at least" if kw == "minProperties" else "at most"
        return f"{where}: must have {word} {expected} properties; got {len(got)}"
    if kw == "pattern":
        return f"{where}: {short(got)} does not match the pattern {short(expected)}"
    if kw == "multipleOf":
        return f"{where}: must be a multiple of {expected}; got {short(got)}"
    if kw == "uniqueItems":
        return f"{where}: items must be unique"
    if kw in ("anyOf", "oneOf"):
        inner = best_match(err.context or []) if err.context else None
        hint = f" (closest: {_describe(inner, pointer(inner.absolute_path))})" if inner is not None else ""
        if kw == "oneOf" and not err.context:
            return f"{where}: matches more than one of the allowed alternatives"
        return f"{where}: matches none of the allowed alternatives{hint}"
    if kw == "not":
        return f"{where}: must not match the excluded shape"
    msg = err.message if len(err.message) <= 200 else err.message[:199] + "…"
    return f"{where}: {msg}"


def schema_violations(name: str, errors: Iterable[ValidationError], *, prefix: str = "") -> list[Violation]:
    """One Violation per problem (per missing or extra property), paths prefixed with `prefix`."""
    out: list[Violation] = []
    for err in errors:
        base = prefix + pointer(err.absolute_path)
        if err.validator == "required" and isinstance(err.instance, Mapping):
            for key in err.validator_value:
                if key not in err.instance:
                    out.append(
                        Violation(
                            name,
                            f"{_where(base)}: required property {short(key)} is missing",
                            base + pointer([key]),
                        )
                    )
        elif err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
            allowed = ", ".join(str(k) for k in err.schema.get("properties", {})) or "none"
            for key in additional_keys(err.instance, err.schema):
                out.append(
                    Violation(
                        name,
                        f"{_where(base)}: property {short(key)} is not allowed (allowed: {allowed})",
                        base + pointer([key]),
                    )
                )
        else:
            out.append(Violation(name, _describe(err, base), base))
    unique = list(dict.fromkeys(out))
    if len(unique) > _MAX_VIOLATIONS:
        rest = len(unique) - _MAX_VIOLATIONS
        unique = [*unique[:_MAX_VIOLATIONS], Violation(name, f"... and {rest} more problems", None)]
    return unique
