"""The cache key: stable under key order and equivalent spellings, sensitive to every output field."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from proxy.cache import EXCLUDED_FIELDS, cache_key, canonical_json

BASE: dict[str, Any] = {
    "model": "fast",
    "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
    "temperature": 0.2,
}
CONTEXT: dict[str, Any] = {
    "alias": "fast",
    "deployments": ["openai/gpt-4o-mini", "mock/echo"],
    "policy_name": "strict-json",
    "policy_hash": "a" * 64,
    "scope_key_hash": "b" * 64,
}


def key(request: dict[str, Any] | None = None, **context: Any) -> str:
    return cache_key(request=BASE if request is None else request, **{**CONTEXT, **context})


# Each output-relevant field with two values; the key must change from absent to A and from A to B.
INCLUDED: dict[str, tuple[Any, Any]] = {
    "messages": ([{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]),
    "tools": (
        [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        [{"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}}],
    ),
    "tool_choice": ("auto", "required"),
    "parallel_tool_calls": (True, False),
    "functions": ([{"name": "f", "parameters": {}}], [{"name": "g", "parameters": {}}]),
    "function_call": ("auto", {"name": "f"}),
    "response_format": ({"type": "json_object"}, {"type": "text"}),
    "temperature": (0.5, 0.7),
    "top_p": (0.5, 0.9),
    "max_tokens": (10, 20),
    "max_completion_tokens": (10, 20),
    "seed": (1, 2),
    "stop": (["a"], ["b"]),
    "n": (2, 3),
    "presence_penalty": (0.1, 0.2),
    "frequency_penalty": (0.1, 0.2),
    "logit_bias": ({"50256": -100}, {"50256": 100}),
    "logprobs": (True, False),
    "top_logprobs": (1, 2),
    "reasoning_effort": ("low", "high"),
    "verbosity": ("low", "high"),
    "modalities": (["text"], ["text", "audio"]),
    "audio": ({"voice": "alloy", "format": "wav"}, {"voice": "echo", "format": "wav"}),
    "prediction": ({"type": "content", "content": "x"}, {"type": "content", "content": "y"}),
    "web_search_options": ({"search_context_size": "low"}, {"search_context_size": "high"}),
    "some_future_field": (1, 2),  # unknown fields count: a miss, never a wrong hit
}
EXCLUDED: dict[str, Any] = {
    "model": "other-alias",
    "user": "alice",
    "safety_identifier": "u-1",
    "prompt_cache_key": "pck",
    "prompt_cache_retention": "24h",
    "stream": True,
    "stream_options": {"include_usage": True},
    "metadata": {"trace": "1"},
    "store": True,
    "service_tier": "flex",
}


def test_key_is_a_sha256_hex_digest() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", key())


def test_key_order_is_irrelevant_at_every_depth() -> None:
    reordered = {
        "temperature": 0.2,
        "messages": [{"content": "Be terse.", "role": "system"}, {"content": "Hi", "role": "user"}],
        "model": "fast",
    }
    assert key(reordered) == key()
    schema_a = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "required": []}},
    }
    schema_b = {
        "json_schema": {"schema": {"required": [], "type": "object"}, "name": "x"},
        "type": "json_schema",
    }
    assert key({**BASE, "response_format": schema_a}) == key({**BASE, "response_format": schema_b})


def test_integral_floats_equal_ints_everywhere_but_booleans_stay_booleans() -> None:
    assert key({**BASE, "temperature": 1}) == key({**BASE, "temperature": 1.0})
    tools_int = [{"type": "function", "function": {"name": "f", "parameters": {"minimum": 0}}}]
    tools_float = [{"type": "function", "function": {"name": "f", "parameters": {"minimum": 0.0}}}]
    assert key({**BASE, "tools": tools_int}) == key({**BASE, "tools": tools_float})
    assert key({**BASE, "logprobs": True}) != key({**BASE, "logprobs": 1})
    assert key({**BASE, "temperature": 0.5}) != key({**BASE, "temperature": 0.50001})


def test_equivalent_spellings_share_a_key() -> None:
    assert key({**BASE, "seed": None}) == key()
    assert key({**BASE, "n": 1}) == key()
    assert key({**BASE, "stop": "END"}) == key({**BASE, "stop": ["END"]})


@pytest.mark.parametrize("field", sorted(INCLUDED))
def test_each_output_field_changes_the_key(field: str) -> None:
    first, second = INCLUDED[field]
    without = {k: v for k, v in BASE.items() if k != field}
    keys = {key(without), key({**without, field: first}), key({**without, field: second})}
    assert len(keys) == 3


@pytest.mark.parametrize("field", sorted(EXCLUDED))
def test_each_excluded_field_leaves_the_key_alone(field: str) -> None:
    assert field in EXCLUDED_FIELDS
    assert key({**BASE, field: EXCLUDED[field]}) == key()


def test_excluded_list_is_exactly_the_documented_one() -> None:
    assert set(EXCLUDED) == set(EXCLUDED_FIELDS)


def test_tenant_scope_separates_callers_and_global_scope_is_shared() -> None:
    assert key(scope_key_hash="1" * 64) != key(scope_key_hash="2" * 64)
    assert key(scope_key_hash=None) != key(scope_key_hash="1" * 64)
    assert key(scope_key_hash=None) == key(scope_key_hash=None)


def test_policy_alias_deployments_and_route_are_in_the_key() -> None:
    base = key()
    assert key(policy_hash="c" * 64) != base  # a policy edit invalidates its entries
    assert key(policy_name="default") != base
    assert key(alias="slow") != base
    assert key(deployments=["mock/echo", "openai/gpt-4o-mini"]) != base  # chain order matters
    assert key(deployments=["openai/gpt-4o-mini"]) != base
    assert key(kind="embeddings") != base


def test_odd_numbers_do_not_break_the_key() -> None:
    assert key({**BASE, "seed": 2**80}) != key({**BASE, "seed": 2**70})
    assert key({**BASE, "temperature": float("nan")}) != key({**BASE, "temperature": None})
    assert key({**BASE, "max_tokens": 1e300}) != key({**BASE, "max_tokens": 1e299})


def test_canonical_json_is_sorted_compact_and_utf8() -> None:
    text = canonical_json({"b": [1.0, "é"], "a": {"y": 2, "x": 0.5}}).decode()
    assert text == '{"a":{"x":0.5,"y":2},"b":[1,"é"]}'
    assert json.loads(text) == {"a": {"x": 0.5, "y": 2}, "b": [1, "é"]}
