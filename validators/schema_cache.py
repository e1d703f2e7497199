"""Compiled Draft 2020-12 validators, one per distinct schema, in an LRU bounded by entries and bytes.

Every validator gets an explicit `referencing` registry that refuses to retrieve anything, and a
schema whose references could leave the document is refused before it is compiled (`_refs`).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson
from jsonschema import ValidationError
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from validators._fastschema import compile_check
from validators._formats import format_checker
from validators._keywords import EXTENDED, additional_keys
from validators._re2 import UnsupportedPattern, compile_re2
from validators._refs import ref_problem

__all__ = ["CompiledSchema", "SchemaCache", "SchemaProblem", "additional_keys", "compile_documents"]

# Bytes one compiled schema holds per character of its canonical key: the key, the orjson alias,
# the parsed schema the validator keeps and the compiled closures (measured with tracemalloc on
# generated 200 KB schemas: 8.7x to 8.9x; rounded up to 10).
BYTES_PER_KEY_CHAR = 10

# Dates and dataclasses are not JSON data to the stdlib: leave them to the canonical key, which refuses them.
_ALIAS_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class SchemaProblem(ValueError):
    """The schema itself cannot be used (not a schema, too large, unsupported pattern, remote `$ref`)."""


def _refuse(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs class behind a wrapper mypy cannot read


# Immutable: `with_resource` returns a new registry. Without it jsonschema would fetch remote $refs.
_NO_RETRIEVAL: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]  # (same)
_UNRESOLVABLE = "the schema refers to something it does not contain"


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

    def __init__(self, schema: Mapping[str, Any] | bool, documents: Mapping[str, Any] | None = None) -> None:
        self.schema = schema
        registry, root = _NO_RETRIEVAL, schema
        if documents:  # a policy's local files, pre-loaded by URI; the root is the first of them
            base = next(iter(documents))
            registry = registry.with_resources(
                (uri, DRAFT202012.create_resource(d)) for uri, d in documents.items()
            )
            root = {**schema, "$id": base} if isinstance(schema, Mapping) else schema
        self.validator: Any = EXTENDED(root, registry=registry, format_checker=format_checker())
        self.fast = compile_check(schema)  # None: the schema needs jsonschema for the yes/no answer too

    def is_valid(self, instance: Any) -> bool:
        """True when `instance` matches; False as well when the schema recurses without end."""
        try:
            if self.fast is not None:
                return self.fast(instance)
            return bool(self.validator.is_valid(instance))
        except (RecursionError, Unresolvable):
            return False

    def errors(self, instance: Any) -> list[ValidationError]:
        """Every error, in document order; a single synthetic error when the schema recurses without end."""
        try:
            errs = list(self.validator.iter_errors(instance))
        except RecursionError:
            return [ValidationError("the schema refers to itself without end ($ref loop)")]
        except Unresolvable:
            return [ValidationError(_UNRESOLVABLE)]
        return sorted(errs, key=lambda e: [str(p) for p in e.absolute_path])

    def subschema_valid(self, instance: Any, subschema: Any) -> bool:
        """True when `instance` matches `subschema`, resolving `$ref` against this schema."""
        try:
            return bool(self.validator.evolve(schema=subschema).is_valid(instance))
        except (RecursionError, Unresolvable):
            return False


class SchemaCache:
    """A bounded LRU of CompiledSchema keyed by canonical schema JSON; safe to share across threads.

    Writing the canonical key with the stdlib costs more than the rest of a check, and every request
    carries its own copy of the same schema, so an orjson rendering of the schema, an order of
    magnitude cheaper, stands in for it: `_aliases` maps it to the canonical key it was last seen
    with. A schema found that way is used only when it equals the cached one, else (values orjson
    renders but the stdlib refuses, like an Enum) the canonical key decides, as it always did.
    """

    def __init__(
        self, maxsize: int = 256, max_schema_chars: int = 1_000_000, max_bytes: int = 64 * 1024 * 1024
    ) -> None:
        self.maxsize = maxsize
        self.max_schema_chars = max_schema_chars
        self.max_bytes = max_bytes
        self.bytes = 0  # estimated: canonical key length times BYTES_PER_KEY_CHAR, summed
        self._items: OrderedDict[str, CompiledSchema] = OrderedDict()
        self._aliases: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, schema: Any) -> CompiledSchema:
        """The compiled validator for `schema`; raise SchemaProblem when it is not a usable schema."""
        if not (type(schema) is dict or isinstance(schema, (Mapping, bool))):
            raise SchemaProblem("a JSON Schema must be an object or a boolean")
        alias = _alias(schema)
        found = None if alias is None else self._known(alias, schema)
        if found is not None:
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
            self._store(key, alias, compiled)
        return compiled

    def vet(self, schema: Any) -> CompiledSchema | None:
        """Raise SchemaProblem when `schema` refers outside itself; cheap for a schema compiled before,
        whose compiled validator it returns (a request's schema is then looked up once, not twice)."""
        alias = _alias(schema)
        if alias is not None:
            found = self._known(alias, schema)
            if found is not None:
                return found
            with self._lock:
                if alias in self._aliases:
                    return None
        problem = ref_problem(schema)
        if problem is not None:
            raise SchemaProblem(problem)
        return None

    def _known(self, alias: bytes, schema: Any) -> CompiledSchema | None:
        """The compiled schema last seen with this orjson rendering, if it equals `schema`."""
        with self._lock:
            key = self._aliases.get(alias)
            found = None if key is None else self._items.get(key)
            if (
                key is None
                or found is None
                or len(key) > self.max_schema_chars
                or not (found.schema is schema or found.schema == schema)
            ):
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def _store(self, key: str, alias: bytes | None, compiled: CompiledSchema) -> None:
        """Insert under the lock, then evict least recently used entries until both bounds hold."""
        cost = len(key) * BYTES_PER_KEY_CHAR
        if cost > self.max_bytes or key in self._items:  # larger than the whole cache: use once, keep none
            return
        self._items[key] = compiled
        self.bytes += cost
        if alias is not None:
            self._aliases[alias] = key
        evicted = False
        while len(self._items) > self.maxsize or self.bytes > self.max_bytes:
            old, _ = self._items.popitem(last=False)
            self.bytes -= len(old) * BYTES_PER_KEY_CHAR
            self.evictions += 1
            evicted = True
        if evicted:
            self._aliases = {a: k for a, k in self._aliases.items() if k in self._items}


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


def compile_documents(documents: Mapping[str, Any]) -> CompiledSchema:
    """Compile the first of `documents` (URI -> schema), which may refer to the others; uncached."""
    known = frozenset(documents)
    for uri, doc in documents.items():
        _check(doc, uri, known)
    return CompiledSchema(next(iter(documents.values())), documents)


def _compile(schema: Mapping[str, Any] | bool) -> CompiledSchema:
    _check(schema)
    return CompiledSchema(schema)


def _check(schema: Any, base_uri: str = "", documents: frozenset[str] = frozenset()) -> None:
    try:
        EXTENDED.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise SchemaProblem(f"invalid JSON Schema at '/{where}': {exc.message}") from None
    except RecursionError:
        raise SchemaProblem("the schema is nested too deeply") from None
    problem = ref_problem(schema, base_uri, documents)
    if problem is not None:
        raise SchemaProblem(problem)
    _check_patterns(schema)
