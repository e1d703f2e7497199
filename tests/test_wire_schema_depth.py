"""The schema depth limit: the memo of schemas already seen answers exactly as walking each one would."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.errors import InvalidRequest
from proxy.settings import LimitSettings
from proxy.wire import parse_chat_request

MESSAGES = [{"role": "user", "content": "hi"}]


def rf_request(schema: Any) -> dict[str, Any]:
    return {
        "model": "echo",
        "messages": MESSAGES,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }


def tools_request(parameters: Any) -> dict[str, Any]:
    return {
        "model": "echo",
        "messages": MESSAGES,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
    }


def accepted(request: dict[str, Any], depth: int) -> bool:
    try:
        parse_chat_request(request, LimitSettings(max_schema_depth=depth))
    except InvalidRequest as exc:
        assert exc.param is not None
        assert exc.message == f"`{exc.param}` is nested deeper than {depth} levels."
        return False
    return True


def depth_of(value: Any) -> int:
    """Levels: the value itself is level 1, each dict or list (not a tuple) adds one for its items."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 1


def test_the_same_schema_is_judged_again_under_another_limit() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}}}}
    assert depth_of(schema) == 5
    for _ in range(2):
        assert accepted(rf_request(schema), 5)
        assert not accepted(rf_request(schema), 4)
        assert not accepted(tools_request(schema), 4)
        assert accepted(tools_request(schema), 5)


def test_the_error_names_the_schema_that_is_too_deep() -> None:
    deep = {"a": {"b": {"c": {}}}}
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(rf_request(deep), LimitSettings(max_schema_depth=3))
    assert info.value.param == "response_format.json_schema.schema"
    assert info.value.message == "`response_format.json_schema.schema` is nested deeper than 3 levels."
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(tools_request(deep), LimitSettings(max_schema_depth=3))
    assert info.value.message == "`tools[0].function.parameters` is nested deeper than 3 levels."


def test_a_tuple_is_one_level_even_when_its_json_text_is_two() -> None:
    # `{"enum": ["a"]}` and `{"enum": ("a",)}` serialise alike but only the list adds a level
    as_list, as_tuple = {"enum": ["a"]}, {"enum": ("a",)}
    for _ in range(2):
        assert not accepted(rf_request(as_list), 2)
        assert accepted(rf_request(as_tuple), 2)


def test_values_orjson_cannot_write_are_still_walked() -> None:
    assert accepted(rf_request({1: {"a": "b"}, "big": 2**70}), 3)
    assert not accepted(rf_request({1: {"a": {"b": "c"}}}), 3)


schemas = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=3), schemas, max_size=3), st.integers(min_value=1, max_value=7))
def test_the_limit_holds_exactly_as_deep_as_the_walk_says(schema: dict[str, Any], limit: int) -> None:
    for _ in range(2):  # the second time through the memo
        assert accepted(rf_request(schema), limit) is (depth_of(schema) <= limit)
