"""A compiled yes/no check for the common subset of Draft 2020-12, many times faster than jsonschema.

`compile_check(schema)` returns None when the schema uses anything outside the subset (then the
caller uses jsonschema). Messages always come from jsonschema; this only answers "is it valid?", and
a test compares its answers with jsonschema's on generated schemas and documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from validators._fastchecks import (
    Check,
    all_of,
    all_unique,
    among,
    any_of,
    bound,
    equal,
    every,
    general_object,
    one_of,
    plain_object,
    type_check,
    typed,
)
from validators._formats import CHECKS
from validators._re2 import searcher
from validators._refs import resolve_pointer
from validators.budget import tick

__all__ = ["compile_check"]

# Assertion keywords this compiler does not implement: a schema using one goes to jsonschema.
_UNSUPPORTED = frozenset(
    "$id $anchor $dynamicRef $dynamicAnchor $recursiveRef contains multipleOf propertyNames unevaluatedItems "
    "unevaluatedProperties dependentSchemas dependencies minContains maxContains".split()
)


class _Unsupported(Exception):
    pass


class _Compiler:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, Mapping) or _UNSUPPORTED.intersection(schema):
            raise _Unsupported
        s = schema
        checks: list[Check] = []
        types = ([s["type"]] if isinstance(s["type"], str) else list(s["type"])) if "type" in s else None
        if "$ref" in s:
            checks.append(self.ref(s["$ref"]))
        if types is not None and "$ref" in s:
            checks.append(type_check(types))
        if "enum" in s:
            checks.append(among(list(s["enum"])))
        if "const" in s:
            const = s["const"]
            checks.append(lambda v: equal(v, const))
        for key in ("allOf", "anyOf", "oneOf"):
            if key in s:
                subs = [self.compile(x) for x in s[key]]
                if key == "allOf":
                    checks.append(all_of(subs))
                else:
                    checks.append(any_of(subs) if key == "anyOf" else one_of(subs))
        if "not" in s:
            negated = self.compile(s["not"])
            checks.append(lambda v: not negated(v))
        if "if" in s:
            cond = self.compile(s["if"])
            then = self.compile(s.get("then", True))
            other = self.compile(s.get("else", True))
            checks.append(lambda v: then(v) if cond(v) else other(v))
        checks.extend(self.numbers(s) + self.strings(s) + self.arrays(s) + self.objects(s))
        if types is not None and "$ref" not in s:  # `type` comes first, as above: test it inline
            return typed(types, all_of(checks) if checks else None)
        return all_of(checks)

    def ref(self, ref: Any) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _Unsupported
        if ref not in self.refs:
            found, node = resolve_pointer(self.root, ref)
            if not found:
                raise _Unsupported
            self.refs[ref] = lambda v: False  # placeholder while compiling a recursive target
            self.refs[ref] = self.compile(node)
        table = self.refs

        def follow(v: Any) -> bool:
            tick()  # every recursion passes a $ref: this bounds self-similar schemas
            return table[ref](v)

        return follow

    def numbers(self, s: Mapping[str, Any]) -> list[Check]:
        out: list[Check] = []
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in s:
                out.append(bound(key, s[key]))
        return out

    def strings(self, s: Mapping[str, Any]) -> list[Check]:
        out: list[Check] = []
        if "minLength" in s:
            low = s["minLength"]
            out.append(lambda v: type(v) is not str or len(v) >= low)
        if "maxLength" in s:
            high = s["maxLength"]
            out.append(lambda v: type(v) is not str or len(v) <= high)
        if "pattern" in s:
            found = searcher(s["pattern"])
            out.append(lambda v: type(v) is not str or found(v))
        if "format" in s and s["format"] in CHECKS:
            fmt = CHECKS[s["format"]]
            out.append(lambda v: type(v) is not str or fmt(v))
        return out

    def arrays(self, s: Mapping[str, Any]) -> list[Check]:
        out: list[Check] = []
        if "minItems" in s or "maxItems" in s:
            low, high = s.get("minItems", 0), s.get("maxItems", float("inf"))
            out.append(lambda v: type(v) is not list or low <= len(v) <= high)
        prefix = [self.compile(x) for x in s.get("prefixItems", [])]
        items = self.compile(s["items"]) if "items" in s else None
        if items is not None and not prefix:
            out.append(every(items))
        elif prefix or items is not None:
            n = len(prefix)

            def each(v: Any) -> bool:
                if type(v) is not list:
                    return True
                for c, x in zip(prefix, v, strict=False):
                    if not c(x):
                        return False
                return items is None or all(items(x) for x in v[n:])

            out.append(each)
        if s.get("uniqueItems") is True:
            out.append(lambda v: type(v) is not list or all_unique(v))
        return out

    def objects(self, s: Mapping[str, Any]) -> list[Check]:
        keys = (
            "required",
            "properties",
            "patternProperties",
            "additionalProperties",
            "dependentRequired",
            "minProperties",
            "maxProperties",
        )
        if not any(k in s for k in keys):
            return []
        props = {k: self.compile(x) for k, x in s.get("properties", {}).items()}
        extra = self.compile(s["additionalProperties"]) if "additionalProperties" in s else None
        patterns = [(searcher(p), self.compile(x)) for p, x in s.get("patternProperties", {}).items()]
        if patterns or any(k in s for k in keys[4:]):
            return [general_object(s, props, extra, patterns)]
        return [plain_object(list(s.get("required", [])), props, extra)]


def compile_check(schema: Any) -> Check | None:
    """A fast validity check for `schema`, or None when it uses keywords outside the subset."""
    try:
        return _Compiler(schema).compile(schema)
    except (_Unsupported, KeyError, TypeError, ValueError):
        return None
