"""The hot path's shortcuts answer exactly as the slow paths they stand in for.

- `strict_json` reads with orjson when it can vouch for the result, else with the stdlib reference;
- `SchemaCache` finds a schema by its orjson rendering, keeping the canonical-key semantics;
- the compiled check tests `type` inline and looks strings up in a set for `enum`.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validators import SchemaCache, SchemaProblem
from validators.base import _stdlib_strict_json as _reference  # the reading strict_json always had
from validators.base import strict_json


def _outcome(parse: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", parse(text)
    except ValueError as exc:
        return "error", str(exc)


def _same(a: Any, b: Any) -> bool:
    """Equal with types kept apart (1, 1.0, True), key order kept, NaN equal to NaN, -0.0 not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return bool(a == b)


def assert_reads_like_reference(text: str) -> None:
    fast, slow = _outcome(strict_json, text), _outcome(_reference, text)
    assert _same(fast, slow), (text, fast, slow)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a": "x:y", "a": "z"}',  # a dropped duplicate takes a colon from a string with it
        '{"a": {"b": 1, "b": {"c:": 2}}, "d": [1, {"e": 0, "e": 0}]}',
        '{"a\\u003a": 1, "a:": 2}',  # an escaped colon: the colon count cannot tell
        '{"a\\u003A": "\\u003a", "a:": 1}',
        '{"a": 1, "a": 2, "\\u003a": 3}',  # the escape's colon would make up for the lost pair
        '{"k": ":::", "l": "a:b"}',
        "[18446744073709551616, -9223372036854775809, 9223372036854775807, -9223372036854775808]",
        "[123456789012345678901234567890, 1e400, -1e400, 1e-400, -0, -0.0, 1E2, 0.1]",
        '["e+", 1e+16, 9999999999999998.0, 2.5e+300]',
        '{"a": NaN}',
        "[Infinity]",
        "-Infinity",
        '"\\ud800"',
        '"\\ud83d\\ude00 and \\ud83d\\u0041"',
        "\ufeff{}",
        '{"a": 1,}',
        "[1] [2]",
        " \t\n\r{}\r\n",
        "{}\x0c",
        '"a\x01b"',
        '"\\u0000\\/\\b\\f\\n\\r\\t\\"\\\\"',
        "[" * 254 + "]" * 254,
        "[" * 255 + "]" * 255,
        '{"a":' * 300 + "1" + "}" * 300,
        "",
        "nul",
    ],
)
def test_strict_json_reads_like_the_stdlib_reference(text: str) -> None:
    assert_reads_like_reference(text)


def test_strict_json_refuses_what_it_always_refused() -> None:
    with pytest.raises(ValueError, match='duplicate key "a"'):
        strict_json('{"a": "1:2", "a": 3}')
    with pytest.raises(ValueError, match="NaN is not a JSON value"):
        strict_json("[NaN]")
    assert strict_json("[18446744073709551616]") == [18446744073709551616]
    assert type(strict_json("[18446744073709551616]")[0]) is int


keys = st.sampled_from(["a", "b", "a:", ":", "e+", "x\\u003a", "é", "\\ud83d\\ude00", '\\"'])
atoms = st.sampled_from(
    [
        "1",
        "-0",
        "0.5",
        "-2.5e-3",
        "1e+16",
        "1E400",
        "18446744073709551616",
        "9223372036854775807",
        "true",
        "false",
        "null",
        "NaN",
        "-Infinity",
        '"a:b"',
        '"e+1"',
        '"\\u003a"',
        '"\\ud800"',
        '"\\u00e9"',
        '""',
    ]
)


@st.composite
def texts(draw: st.DrawFn, depth: int = 3) -> str:
    """JSON-like text: mostly valid, with duplicate keys, odd numbers, escapes and some breakage."""
    if depth == 0 or draw(st.booleans()):
        return draw(atoms)
    space = draw(st.sampled_from(["", " ", "\n", "\t"]))
    if draw(st.booleans()):
        items = draw(st.lists(texts(depth - 1), max_size=3))
        return "[" + ("," + space).join(items) + "]"
    members = draw(st.lists(st.tuples(keys, texts(depth - 1)), max_size=4))
    body = ("," + space).join(f'"{k}"{space}:{space}{v}' for k, v in members)
    return "{" + space + body + space + "}"


@settings(max_examples=400, deadline=None)
@given(texts(), st.sampled_from(["", "", " ", ",", "]", "x", "\x0b"]))
def test_strict_json_reads_generated_text_like_the_reference(text: str, tail: str) -> None:
    assert_reads_like_reference(text + tail)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=12,
    )
)
def test_strict_json_reads_serialized_documents_like_the_reference(doc: Any) -> None:
    for text in (json.dumps(doc), json.dumps(doc, ensure_ascii=False, indent=1)):
        assert_reads_like_reference(text)


SCHEMA = {
    "type": "object",
    "required": ["a"],
    "properties": {"a": {"type": "string", "enum": ["x", "y"]}, "n": {"type": "integer", "minimum": 1}},
}


def test_a_fresh_copy_of_a_cached_schema_is_a_hit() -> None:
    cache = SchemaCache()
    first = cache.get(SCHEMA)
    again = cache.get(json.loads(json.dumps(SCHEMA)))
    assert again is first and (cache.hits, cache.misses) == (1, 1)


def test_values_orjson_writes_alike_stay_apart() -> None:
    cache = SchemaCache()
    nan, none = cache.get({"const": float("nan")}), cache.get({"const": None})
    assert nan is not none and none.schema == {"const": None}
    assert cache.get({"const": None}) is none
    assert cache.get({"const": float("nan")}) is nan  # a NaN is never equal, yet the canonical key hits
    assert (cache.hits, cache.misses) == (2, 2)
    assert cache.get({"minimum": -0.0}) is not cache.get({"minimum": 0.0})
    assert cache.get({"const": 1}) is not cache.get({"const": 1.0}) is not cache.get({"const": True})


class Colour(enum.Enum):
    RED = "red"


def test_values_only_orjson_can_write_are_still_refused() -> None:
    cache = SchemaCache()
    cache.get({"enum": ["red"]})
    with pytest.raises(SchemaProblem, match="not JSON data"):
        cache.get({"enum": [Colour.RED]})
    with pytest.raises(SchemaProblem, match="not JSON data"):
        cache.get({"enum": [Colour.RED]})


def test_keys_the_canonical_form_merges_still_share_an_entry() -> None:
    cache = SchemaCache()
    by_str = cache.get({"properties": {"1": {"type": "string"}}})
    assert cache.get({"properties": {1: {"type": "string"}}}) is by_str  # json.dumps writes 1 as "1"
    as_list = cache.get({"required": ["a"]})
    assert cache.get({"required": ("a",)}) is as_list  # json.dumps writes a tuple as a list


def test_an_evicted_schema_is_compiled_again_and_the_size_limit_still_applies() -> None:
    cache = SchemaCache(maxsize=2)
    first = cache.get(SCHEMA)
    cache.get({"const": 1})
    cache.get({"const": 2})
    assert len(cache) == 2
    again = cache.get(dict(SCHEMA))
    assert again is not first and cache.misses == 4
    cache.max_schema_chars = 50
    with pytest.raises(SchemaProblem, match="larger than 50"):
        cache.get(dict(SCHEMA))


def test_a_request_schema_compiled_before_is_looked_up_once_per_request() -> None:
    """`vet` finds a known schema's compiled validator; the json_schema check then uses that one."""
    from validators import Output, RequestContext, check, default_registry

    registry = default_registry()
    cache = registry.schema_cache
    rf = {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}}
    validators = [registry.create({"type": "json_schema"})]
    assert cache.vet(SCHEMA) is None and cache.misses == 0  # vetted only: nothing compiled yet
    assert not check(validators, Output(text='{"a": "x"}'), RequestContext(response_format=rf))
    assert (cache.hits, cache.misses) == (0, 1)
    copy = json.loads(json.dumps(SCHEMA))
    vetted = cache.vet(copy)
    assert vetted is cache.get(SCHEMA)
    hits = cache.hits
    ctx = RequestContext(
        response_format={**rf, "json_schema": {"name": "t", "schema": copy}}, response_compiled=vetted
    )
    assert check(validators, Output(text='{"a": "z"}'), ctx)  # invalid: judged by the vetted validator
    assert cache.hits == hits  # no second lookup


TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]
values = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, 1.0, 1.5, -2.0, "", "x", "y", []])
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(TYPES) | st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True),
    st.sampled_from(["enum", "minimum", "maxLength", "items", "required", "not"]),
    st.lists(values, min_size=1, max_size=4),
    st.lists(values | st.dictionaries(st.sampled_from(["a", "b"]), values, max_size=2), max_size=8),
)
def test_type_with_another_keyword_agrees_with_jsonschema(
    types: Any, keyword: str, options: list[Any], docs: list[Any]
) -> None:
    other: Any = {
        "enum": options,
        "minimum": 1,
        "maxLength": 1,
        "items": {"type": "integer"},
        "required": ["a"],
        "not": {"const": 1},
    }[keyword]
    compiled = SchemaCache().get({"type": types, keyword: other})
    assert compiled.fast is not None
    for doc in [*options, *docs]:
        assert compiled.is_valid(doc) == bool(compiled.validator.is_valid(doc)), (types, keyword, doc)
