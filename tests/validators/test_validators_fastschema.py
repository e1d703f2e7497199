"""The compiled fast check must answer exactly as jsonschema does (same extended validator, same formats)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from validators._fastschema import compile_check
from validators.schema_cache import SchemaCache

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"

names = st.sampled_from(["a", "b", "c", "id", "x-y"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.sampled_from([0.0, 1.0, 2.5, -1.5, 1e300])
    | st.sampled_from(
        [
            "",
            "a",
            "ab",
            "A1",
            "2024-02-29",
            "2024-02-30",
            "x@y.z",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "https://e.com",
            "abc",
        ]
    )
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=10,
)
TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]


def schemas(depth: int = 2) -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.booleans(),
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(TYPES)
                | st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True)
            }
        ),
        st.fixed_dictionaries({"enum": st.lists(scalars, min_size=1, max_size=4)}),
        st.fixed_dictionaries({"const": scalars}),
        st.fixed_dictionaries({"minimum": st.integers(-3, 3)}),
        st.fixed_dictionaries({"exclusiveMaximum": st.sampled_from([0, 2, 2.5])}),
        st.fixed_dictionaries({"minLength": st.integers(0, 3), "maxLength": st.integers(1, 4)}),
        st.fixed_dictionaries({"pattern": st.sampled_from(["^a", "[0-9]", "^(a+)+$", "b$"])}),
        st.fixed_dictionaries(
            {"format": st.sampled_from(["date", "email", "uuid", "uri", "date-time", "color"])}
        ),
        st.fixed_dictionaries({"minItems": st.integers(0, 2), "uniqueItems": st.booleans()}),
        st.fixed_dictionaries({"required": st.lists(names, max_size=2, unique=True)}),
    )
    if depth == 0:
        return leaf
    inner = schemas(depth - 1)
    return st.one_of(
        leaf,
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(names, inner, max_size=3)},
            optional={
                "additionalProperties": inner,
                "required": st.lists(names, max_size=2, unique=True),
                "patternProperties": st.dictionaries(st.sampled_from(["^x", "d$"]), inner, max_size=1),
                "dependentRequired": st.dictionaries(
                    names, st.lists(names, max_size=2, unique=True), max_size=1
                ),
            },
        ),
        st.fixed_dictionaries(
            {"items": inner},
            optional={"prefixItems": st.lists(inner, min_size=1, max_size=2), "maxItems": st.integers(0, 3)},
        ),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"oneOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"allOf": st.lists(inner, min_size=1, max_size=2)}),
        st.fixed_dictionaries({"not": inner}),
        st.fixed_dictionaries({"if": inner, "then": inner}, optional={"else": inner}),
    )


with_refs = st.builds(
    lambda d, ref: {"$defs": {"d": d}, **ref},
    schemas(1),
    st.sampled_from(
        [{"$ref": "#/$defs/d"}, {"items": {"$ref": "#/$defs/d"}}, {"properties": {"a": {"$ref": "#"}}}]
    ),
)


def _jsonschema_says(compiled: Any, doc: Any) -> bool:
    try:
        return bool(compiled.validator.is_valid(doc))
    except RecursionError:
        return False


@settings(max_examples=150, deadline=None)
@given(schemas() | with_refs, st.lists(documents, min_size=1, max_size=6))
def test_fast_check_agrees_with_jsonschema(schema: Any, docs: list[Any]) -> None:
    compiled = SchemaCache().get(schema)
    assert compiled.fast is not None
    for doc in docs:
        assert compiled.is_valid(doc) == _jsonschema_says(compiled, doc), (schema, doc)


def test_fast_check_agrees_on_the_corpus() -> None:
    cache = SchemaCache()
    entries = [
        json.loads(line) for line in (CORPUS_DIR / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    schemas = {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (CORPUS_DIR / "schemas").glob("*.json")
    }
    checked = 0
    for e in entries:
        compiled = cache.get(schemas[e["schema"]])
        assert compiled.fast is not None, e["schema"]
        docs = [e["expected"]]
        try:
            docs.append(json.loads(e["text"]))
        except ValueError:
            pass
        for doc in docs:
            assert compiled.fast(doc) == bool(compiled.validator.is_valid(doc)), e["id"]
            checked += 1
    assert checked > 500


def test_unsupported_keywords_fall_back_to_jsonschema() -> None:
    for schema in (
        {"type": "array", "contains": {"const": 1}},
        {"multipleOf": 3},
        {"$ref": "https://e.com/s"},
        {"properties": {"a": {"unevaluatedProperties": False}}},
    ):
        assert compile_check(schema) is None
    compiled = SchemaCache().get({"type": "array", "contains": {"const": 1}})
    assert compiled.is_valid([0, 1]) and not compiled.is_valid([0])


def test_a_property_named_like_a_keyword_is_fine() -> None:
    assert (
        compile_check({"properties": {"contains": {"type": "string"}, "$id": {"type": "integer"}}})
        is not None
    )
