"""Deterministic repair: syntax repair, schema coercion, refusals, tool-call arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from validators import Output, Registry, RequestContext, Validator, check, repair

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": ["number", "null"]},
        "active": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "level": {"enum": ["low", "high", "HIGH-X"]},
        "currency": {"type": "string", "default": "USD"},
        "note": {"type": "string"},
    },
    "required": ["name", "age", "currency"],
    "additionalProperties": False,
}


@pytest.fixture
def person(registry: Registry) -> list[Validator]:
    return [registry.create({"type": "json"}), registry.create({"type": "json_schema", "schema": PERSON})]


def _fixed(
    validators: list[Validator], text: str, ctx: RequestContext, **kw: Any
) -> tuple[Any, tuple[str, ...]]:
    result = repair(validators, Output(text, **kw), ctx)
    assert result is not None, text
    assert check(validators, result.output, ctx) == []
    assert result.output.text is not None
    return json.loads(result.output.text), result.changes


@pytest.mark.parametrize(
    ("text", "changes"),
    [
        ('```json\n{"name": "Ann", "age": 3, "currency": "EUR"}\n```', ("fence",)),
        ('```\n{"name": "Ann", "age": 3, "currency": "EUR"}\n```', ("fence",)),
        ('Sure:\n{"name": "Ann", "age": 3, "currency": "EUR"}\nAnything else?', ("prose",)),
        ('{"name": "Ann", "age": 3, "currency": "EUR",}', ("trailing_comma",)),
        ("{'name': 'Ann', 'age': 3, 'currency': 'EUR'}", ("single_quotes",)),
        ('{"name": "Ann", // who\n "age": 3, /* years */ "currency": "EUR"}', ("comments",)),
        ('{"name": "Ann", "age": 3, "currency": "EUR", "score": None}', ("python_literals",)),
        (
            "{\u201cname\u201d: \u201cAnn\u201d, \u201cage\u201d: 3, \u201ccurrency\u201d: \u201cEUR\u201d}",
            ("smart_quotes",),
        ),
        ('{name: "Ann", age: 3, currency: "EUR"}', ("unquoted_key",)),
        ('{"name": "Ann", "age": 3, "currency": "EUR"', ("truncated",)),
    ],
)
def test_syntax_repairs_are_named(
    person: list[Validator], ctx: RequestContext, text: str, changes: tuple[str, ...]
) -> None:
    value, made = _fixed(person, text, ctx)
    assert value["name"] == "Ann" and value["age"] == 3
    assert made == changes


def test_unescaped_newlines_stay_inside_the_string(person: list[Validator], ctx: RequestContext) -> None:
    value, made = _fixed(
        person, '{"name": "Ann", "age": 3, "currency": "EUR", "note": "line 1\nline 2: x\n"}', ctx
    )
    assert value["note"] == "line 1\nline 2: x\n"
    assert made == ("unescaped_newline",)


def test_schema_coercions_are_named_with_paths(person: list[Validator], ctx: RequestContext) -> None:
    text = '{"name": "Ann", "age": "42", "active": "TRUE", "tags": "vip", "level": "High", "extra": 1}'
    value, made = _fixed(person, text, ctx)
    assert value == {
        "name": "Ann",
        "age": 42,
        "active": True,
        "tags": ["vip"],
        "level": "high",
        "currency": "USD",
    }
    assert made == (
        "coerce:/age",
        "coerce:/active",
        "wrap:/tags",
        "enum_case:/level",
        "drop:/extra",
        "default:/currency",
    )


def test_nan_becomes_null_only_where_null_is_allowed(person: list[Validator], ctx: RequestContext) -> None:
    value, made = _fixed(person, '{"name": "A", "age": 1, "currency": "X", "score": NaN}', ctx)
    assert value["score"] is None and made == ("nan_to_null:/score",)
    assert repair(person, Output('{"name": "A", "age": NaN, "currency": "X"}'), ctx) is None


def test_double_encoded_document_is_decoded(person: list[Validator], ctx: RequestContext) -> None:
    inner = json.dumps({"name": "Ann", "age": 3, "currency": "EUR"})
    value, made = _fixed(person, json.dumps(inner), ctx)
    assert value["age"] == 3 and made == ("decode_string",)


@pytest.mark.parametrize(
    "text",
    [
        # two documents
        '{"name": "Ann", "age": 3, "currency": "EUR"}\n{"name": "Bob", "age": 4, "currency": "EUR"}',
        '{"name": "Ann", "age": 3, "currency": "EU',  # cut inside a string
        '{"name": "Ann", "currency": "EUR", "age": 3',  # cut right after a number
        '{"name": "Ann", "currency": "EUR", "age": 3, "tags": ["a",',  # cut after a comma
        '{"name": "Ann", "age": "about 3", "currency": "EUR"}',  # not convertible exactly
        '{"name": "Ann", "age": "1,000", "currency": "EUR"}',  # thousands separator or decimal comma?
        '{"name": "Ann", "currency": "EUR"}',  # required value missing, no default
        '{"name": "Ann", "age": 3, "currency": "EUR", "level": "hi"}',  # not an enum value
        '[{"name": "Ann", "age": 3, "currency": "EUR"},]',  # an object inside an array is not the object
        '{"name": "Ann", "age": 3, "currency": "EUR", "note": "\\ud800",}',  # a lone surrogate cannot be sent
        "I can't answer that.",
        "",
        '{"text": "first line\n"second": 2}',  # a quote that may end the string or not
        '{"name": "Ann", "age": 3, "currency": "EUR", "note": "He said "stop", then left"}',
    ],
)
def test_unsafe_or_impossible_repairs_are_refused(
    person: list[Validator], ctx: RequestContext, text: str
) -> None:
    result = repair(person, Output(text), ctx)
    if result is not None:  # only the one entry that is fully repairable may come back, and exactly right
        assert text.startswith('{"name": "Ann", "age": 3, "level": "high-x"')
        assert json.loads(result.output.text or "") == {
            "name": "Ann",
            "age": 3,
            "level": "HIGH-X",
            "currency": "EUR",
        }


def test_a_cut_answer_is_never_closed(person: list[Validator], ctx: RequestContext) -> None:
    text = '{"name": "Ann", "age": 3, "currency": "EUR"'
    assert repair(person, Output(text), ctx) is not None
    assert repair(person, Output(text, finish_reason="length"), ctx) is None


def test_repair_requires_every_validator_to_pass(registry: Registry, ctx: RequestContext) -> None:
    validators = [registry.create({"type": "json"}), registry.create({"type": "phrases", "deny": ["acme"]})]
    assert repair(validators, Output('{"a": "acme",}'), ctx) is None
    result = repair(validators, Output('{"a": "fine",}'), ctx)
    assert result is not None and result.output.text == '{"a": "fine"}'


def test_valid_output_is_left_alone(person: list[Validator], ctx: RequestContext) -> None:
    text = '{ "name": "Ann",   "age": 3, "currency": "EUR" }'
    result = repair(person, Output(text), ctx)
    assert result is not None and result.output.text == text and result.changes == ()


def test_repaired_text_keeps_non_ascii(person: list[Validator], ctx: RequestContext) -> None:
    result = repair(person, Output('{"name": "Zoë 😀", "age": 3, "currency": "€",}'), ctx)
    assert result is not None and result.output.text == '{"name": "Zoë 😀", "age": 3, "currency": "€"}'


def test_json_repair_damage_to_a_certain_reading_is_not_taken(
    person: list[Validator], ctx: RequestContext
) -> None:
    # json-repair alone drops the trailing newline here; the reading is certain, so it stands.
    value, _ = _fixed(person, '{"name": "Ann", "age": 3, "currency": "EUR", "note": "end\\n",}', ctx)
    assert value["note"] == "end\n"


TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "unit": {"enum": ["c", "f"]},
                },
                "required": ["city", "days"],
                "additionalProperties": False,
            },
        },
    },
)


def _call(args: str, name: str = "get_weather") -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}


def test_tool_call_arguments_are_repaired_against_the_tool_schema(registry: Registry) -> None:
    validators = [registry.create({"type": "tool_calls"})]
    ctx = RequestContext(tools=TOOLS)
    output = Output(None, (_call("{'city': 'Oslo', 'days': '3', 'unit': 'C', 'why': 'x',}"),))
    result = repair(validators, output, ctx)
    assert result is not None
    call = result.output.tool_calls[0]
    assert call["id"] == "call_1" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo", "days": 3, "unit": "c"}
    assert result.changes == (
        "tool_calls/0:single_quotes",
        "tool_calls/0:trailing_comma",
        "tool_calls/0:coerce:/days",
        "tool_calls/0:enum_case:/unit",
        "tool_calls/0:drop:/why",
    )
    assert repair(validators, Output(None, (_call('{"city": "Oslo"}'),)), ctx) is None
    assert (
        repair(validators, Output(None, (_call('{"city": "Oslo", "days": 1}', "delete_all"),)), ctx) is None
    )


def test_redaction_reaches_numbers_inside_json() -> None:
    """A card number sent as a bare JSON number, or as a number value, is redacted too (it leaked)."""
    from validators import Output, RequestContext, default_registry, redact

    pii = [default_registry().create({"type": "pii", "entities": ["credit_card"], "on_fail": "redact"})]
    for text in ("378282246310005", '{"card": 378282246310005, "n": 7}'):
        out, names = redact(pii, Output(text), RequestContext())
        assert "378282246310005" not in (out.text or "") and names == ["pii:credit_card"]
    out, _ = redact(pii, Output('{"card": 378282246310005, "n": 7}'), RequestContext())
    assert out.json_error() is None and '"n": 7' in (out.text or "")
