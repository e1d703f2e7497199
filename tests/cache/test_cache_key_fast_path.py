"""The cache key's fast path (serialise, then read the bytes) gives the very key the documented walk gives."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.cache import cache_key, canonical_json

CONTEXT: dict[str, Any] = {
    "alias": "fast",
    "deployments": ["openai/gpt-4o-mini", "mock/echo"],
    "policy_name": "strict-json",
    "policy_hash": "a" * 64,
    "scope_key_hash": "b" * 64,
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["order_id", "items"],
    "properties": {
        "order_id": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"quantity": {"type": "integer", "minimum": 1}, "price": {"type": "number"}},
            },
        },
        "status": {"type": "string", "enum": ["pending", "shipped"]},
    },
}
REQUEST: dict[str, Any] = {
    "model": "fast",
    "messages": [
        {"role": "system", "content": "Extract the order as JSON."},
        {"role": "user", "content": "Order 7 for Ada: 2 keyboards, 3 mice"},
    ],
    "temperature": 0,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "order", "strict": True, "schema": SCHEMA},
    },
}


def key(request: Mapping[str, Any]) -> str:
    return cache_key(request=request, **CONTEXT)


def test_keys_are_those_computed_before_the_fast_path() -> None:
    # computed with the walk-everything implementation: a stored cache stays valid
    assert key(REQUEST) == "ba6656174032505cc09f79962897cfb52d041383be880f76e9f8720e11e2634f"
    assert key({**REQUEST, "temperature": 0.7}) == (
        "0caf1de544e78cec2847749862b7ec0aea706709f6a9f8942012f6735690aacb"
    )


def _reference_normalise(value: Any) -> Any:
    """The documented normalisation, written as a plain walk."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"$float:{value!r}"
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else f"$int:{value}"
    if isinstance(value, Mapping):
        return {str(k): _reference_normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reference_normalise(v) for v in value]
    return value


def _reference_canonical(document: Any) -> bytes:
    return orjson.dumps(_reference_normalise(document), option=orjson.OPT_SORT_KEYS)


# Strings that look like numbers, nulls and escapes, so that reading the bytes outside strings is tested.
tricky_text = st.sampled_from(
    ["", "1.5", "x1e5", "null", "nullable", "true", 'a"b', "a\\", 'a\\"', "\\\\", '"1.0"', "é2.0"]
) | st.text(alphabet='0123456789.eEnul"\\ :,{}[]', max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | tricky_text
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(tricky_text, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_canonical_json_equals_the_documented_walk(document: Any) -> None:
    assert canonical_json(document) == _reference_canonical(document)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["messages", "tools", "response_format", "x"]), documents, max_size=4))
def test_request_part_equals_the_documented_walk(fields: dict[str, Any]) -> None:
    request = {**REQUEST, **fields}
    for _ in range(2):  # the second time through the memo of the repeated fields
        expected = {
            name: _reference_normalise([v] if name == "stop" and isinstance(v, str) else v)
            for name, v in request.items()
            if name != "model" and v is not None
        }
        document = {
            "v": 1,
            "kind": "chat.completions",
            "alias": CONTEXT["alias"],
            "deployments": CONTEXT["deployments"],
            "policy": [CONTEXT["policy_name"], CONTEXT["policy_hash"]],
            "scope": CONTEXT["scope_key_hash"],
            "request": expected,
        }
        want = hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()
        assert key(request) == want


@pytest.mark.parametrize(
    ("plain", "spelled"),
    [
        ({"minimum": 0}, {"minimum": 0.0}),
        ({"a": "x\\", "b": 1}, {"a": "x\\", "b": 1.0}),  # an escaped backslash ends right before a quote
        ({"a": 'say "1.5"', "b": [2]}, {"a": 'say "1.5"', "b": [2.0]}),
        ({"a": 'x"', "b": [2]}, {"a": 'x"', "b": [2.0]}),  # an escaped quote does not end the string
        ({"a": 'x\\"', "b": 2}, {"a": 'x\\"', "b": 2.0}),  # nor after an escaped backslash
        ({"a": "v1.0", "b": 10**15}, {"a": "v1.0", "b": 1e15}),
    ],
)
def test_integral_floats_behind_tricky_strings_are_still_normalised(plain: Any, spelled: Any) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": plain}}]
    tools_float = [{"type": "function", "function": {"name": "f", "parameters": spelled}}]
    for _ in range(2):
        assert key({**REQUEST, "tools": tools_float}) == key({**REQUEST, "tools": tools})


def test_non_finite_and_huge_numbers_keep_their_tags_inside_containers() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"maximum": None}}}
    nan = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"maximum": math.nan}}}
    assert key({**REQUEST, "response_format": nan}) != key({**REQUEST, "response_format": rf})
    text = canonical_json({"a": [math.inf, 2**70, -(2**63), 1e16]})
    assert text == b'{"a":["$float:inf","$int:1180591620717411303424",-9223372036854775808,1e+16]}'
