"""Compiled Draft 2020-12 validators, one per distinct schema, in a bounded LRU owned by a registry."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError
from jsonschema.validators import extend

from validators._fastschema import compile_check
from validators._formats import format_checker
from validators._re2 import UnsupportedPattern, compile_re2

__all__ = ["CompiledSchema", "SchemaCache", "SchemaProblem"]

# Dates and dataclasses are not JSON data to the stdlib: leave them to the canonical key, which refuses them.
_ALIAS_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class SchemaProblem(ValueError):
    """The schema itself cannot be used (not a schema, too large, unsupported pattern)."""


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and compile_re2(patrn).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Any, patterns: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in patterns.items():
        regex = compile_re2(patrn)
        for key, value in instance.items():
            if regex.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=patrn)


def additional_keys(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Keys of `instance` that neither `properties` nor `patternProperties` of `schema` cover."""
    props = schema.get("properties", {})
    regexes = [compile_re2(p) for p in schema.get("patternProperties", {})]
    return [k for k in instance if k not in props and not any(r.search(k) is not None for r in regexes)]


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


_Validator = extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)


def _check_patterns(node: Any) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                _compile_or_fail(value)
            elif key == "patternProperties" and isinstance(value, Mapping):
                for patrn in value:
                    _compile_or_fail(patrn)
            _check_patterns(value)
    elif isinstance(node, list):
        for item in node:
            _check_patterns(item)


def _compile_or_fail(patrn: str) -> None:
    try:
        compile_re2(patrn)
    except UnsupportedPattern as exc:
        raise SchemaProblem(f"pattern {patrn!r}: {exc}") from None


class CompiledSchema:
    """One compiled schema: validity checks and error lists, with recursion turned into an error."""

    def __init__(self, schema: Mapping[str, Any] | bool) -> None:
        self.schema = schema
        self.validator: Any = _Validator(schema, format_checker=format_checker())
        self.fast = compile_check(schema)  # None: the schema needs jsonschema for the yes/no answer too

    def is_valid(self, instance: Any) -> bool:
        """True when `instance` matches; False as well when the schema recurses without end."""
        try:
            if self.fast is not None:
                return self.fast(instance)
            return bool(self.validator.is_valid(instance))
        except RecursionError:
            return False

    def errors(self, instance: Any) -> list[ValidationError]:
        """Every error, in document order; a single synthetic error when the schema recurses without end."""
        try:
            errs = list(self.validator.iter_errors(instance))
        except RecursionError:
            return [ValidationError("the schema refers to itself without end ($ref loop)")]
        return sorted(errs, key=lambda e: [str(p) for p in e.absolute_path])

    def subschema_valid(self, instance: Any, subschema: Any) -> bool:
        """True when `instance` matches `subschema`, resolving `$ref` against this schema."""
        try:
            return bool(self.validator.evolve(schema=subschema).is_valid(instance))
        except RecursionError:
            return False


class SchemaCache:
    """A bounded LRU of CompiledSchema keyed by canonical schema JSON; safe to share across threads.

    Writing the canonical key with the stdlib costs more than the rest of a check, and every request
    carries its own copy of the same schema, so an orjson rendering of the schema, an order of
    magnitude cheaper, stands in for it: `_aliases` maps it to the canonical key it was last seen
    with. A schema found that way is used only when it equals the cached one, else (values orjson
    renders but the stdlib refuses, like an Enum) the canonical key decides, as it always did.
    """

    def __init__(self, maxsize: int = 256, max_schema_chars: int = 1_000_000) -> None:
        self.maxsize = maxsize
        self.max_schema_chars = max_schema_chars
        self._items: OrderedDict[str, CompiledSchema] = OrderedDict()
        self._aliases: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, schema: Any) -> CompiledSchema:
        """The compiled validator for `schema`; raise SchemaProblem when it is not a usable schema."""
        if not (type(schema) is dict or isinstance(schema, (Mapping, bool))):
            raise SchemaProblem("a JSON Schema must be an object or a boolean")
        alias = _alias(schema)
        if alias is not None:
            with self._lock:
                key = self._aliases.get(alias)
                found = None if key is None else self._items.get(key)
                if (
                    key is not None
                    and found is not None
                    and len(key) <= self.max_schema_chars
                    and (found.schema is schema or found.schema == schema)
                ):
                    self._items.move_to_end(key)
                    self.hits += 1
                    return found
        key = _canonical_key(schema)
        if len(key) > self.max_schema_chars:
            raise SchemaProblem(f"the schema is larger than {self.max_schema_chars} characters")
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                if alias is not None:
                    self._aliases[alias] = key
                return found
        compiled = _compile(schema)
        with self._lock:
            self.misses += 1
            self._items[key] = compiled
            self._items.move_to_end(key)
            if alias is not None:
                self._aliases[alias] = key
            if len(self._items) > self.maxsize:
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
                self._aliases = {a: k for a, k in self._aliases.items() if k in self._items}
        return compiled


def _canonical_key(schema: Mapping[str, Any] | bool) -> str:
    try:
        return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SchemaProblem(f"the schema is not JSON data: {exc}") from None


def _alias(schema: Mapping[str, Any] | bool) -> bytes | None:
    """The schema as orjson writes it with sorted keys; None when orjson cannot (non-str keys, big ints)."""
    try:
        return orjson.dumps(schema, option=_ALIAS_OPTIONS)
    except orjson.JSONEncodeError:
        return None


def _compile(schema: Mapping[str, Any] | bool) -> CompiledSchema:
    try:
        _Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise SchemaProblem(f"invalid JSON Schema at '/{where}': {exc.message}") from None
    except RecursionError:
        raise SchemaProblem("the schema is nested too deeply") from None
    _check_patterns(schema)
    return CompiledSchema(schema)
