"""The json and json_schema validators: verdicts, messages, paths, formats, the schema cache."""

from __future__ import annotations

import time
from typing import Any

import pytest

from validators import Output, Registry, RequestContext, SchemaCache, check
from validators.schema_cache import SchemaProblem

ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "when": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "email": {"type": "string", "format": "email"},
        "site": {"type": "string", "format": "uri"},
        "qty": {"type": "integer", "minimum": 1},
        "status": {"enum": ["open", "closed"]},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
    },
    "required": ["id", "qty"],
    "additionalProperties": False,
    "$defs": {"item": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}},
}


def _schema_ctx(schema: Any) -> RequestContext:
    return RequestContext(
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}
    )


def test_json_accepts_json_and_explains_failures(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "json"})
    assert check([v], Output('{"a": [1, 2]}'), ctx) == []
    [bad] = check([v], Output('{"a": 1,}'), ctx)
    assert bad.validator == "json" and "not valid JSON" in bad.message and "line 1" in bad.message
    assert "NaN" in check([v], Output('{"a": NaN}'), ctx)[0].message
    assert "duplicate key" in check([v], Output('{"a": 1, "a": 2}'), ctx)[0].message
    assert (
        check(
            [v],
            Output(None, ({"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}},)),
            ctx,
        )
        == []
    )
    assert check([v], Output(None), ctx)


def test_deeply_nested_json_is_a_violation_not_a_crash(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "json"})
    [bad] = check([v], Output("[" * 100_000 + "]" * 100_000), ctx)
    assert "nested too deeply" in bad.message


def test_schema_violations_have_pointer_paths_and_plain_messages(
    registry: Registry, ctx: RequestContext
) -> None:
    v = registry.create({"type": "json_schema", "schema": ORDER})
    text = (
        '{"id": "nope", "qty": "3", "status": "Open", "extra": 1, "day": "2024-02-30", '
        '"when": "2024-01-01 10:00", "email": "a@", "site": "not a uri", "items": [{"sku": "a"}, {}]}'
    )
    found = {x.path: x.message for x in check([v], Output(text), ctx)}
    assert found["/id"] == 'at /id: "nope" is not a valid uuid'
    assert found["/qty"] == 'at /qty: expected integer, got string "3"'
    assert found["/status"] == 'at /status: must be one of "open", "closed"; got "Open"'
    assert found["/extra"].startswith('the document: property "extra" is not allowed (allowed: id, when,')
    assert found["/day"] == 'at /day: "2024-02-30" is not a valid date'
    assert found["/when"] == 'at /when: "2024-01-01 10:00" is not a valid date-time'
    assert found["/email"] == 'at /email: "a@" is not a valid email'
    assert found["/site"] == 'at /site: "not a uri" is not a valid uri'
    assert found["/items/1/sku"] == 'at /items/1: required property "sku" is missing'
    assert len(found) == 9


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date", "2024-02-29", "2023-02-29"),
        ("date-time", "2024-07-02T09:30:00.5+02:00", "2024-07-02T25:30:00Z"),
        ("email", "first.last+tag@mail.example.org", "first..last@example.org"),
        ("uri", "https://example.com/a?b=c#d", "/relative/path"),
        ("uuid", "0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950"),
    ],
)
def test_formats_are_checked(registry: Registry, ctx: RequestContext, fmt: str, good: str, bad: str) -> None:
    v = registry.create({"type": "json_schema", "schema": {"type": "string", "format": fmt}})
    assert check([v], Output(f'"{good}"'), ctx) == []
    assert check([v], Output(f'"{bad}"'), ctx)


def test_response_format_schema_applies_per_request(registry: Registry) -> None:
    v = registry.create({"type": "json_schema"})
    assert v.uses_response_format  # type: ignore[attr-defined]
    assert check([v], Output("not json"), RequestContext()) == []  # no schema in the request: nothing to do
    ctx = _schema_ctx({"type": "object", "required": ["a"]})
    assert [x.path for x in check([v], Output("{}"), ctx)] == ["/a"]
    assert "not valid JSON" in check([v], Output("nope"), ctx)[0].message


def test_a_broken_request_schema_is_a_violation(registry: Registry) -> None:
    v = registry.create({"type": "json_schema"})
    [bad] = check([v], Output("{}"), _schema_ctx({"type": 12}))
    assert "response_format schema cannot be used" in bad.message


def test_recursive_ref_schema_does_not_crash(registry: Registry) -> None:
    v = registry.create({"type": "json_schema"})
    [bad] = check([v], Output("{}"), _schema_ctx({"$ref": "#"}))
    assert "refers to itself" in bad.message


def test_schema_patterns_run_on_re2_in_linear_time(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "json_schema", "schema": {"type": "string", "pattern": "^(a+)+$"}})
    start = time.perf_counter()
    assert check([v], Output('"' + "a" * 50_000 + '!"'), ctx)
    assert time.perf_counter() - start < 2.0


def test_schemas_are_compiled_once_and_the_cache_is_bounded() -> None:
    cache = SchemaCache(maxsize=3)
    first = cache.get({"type": "object", "properties": {"a": {"type": "string"}}})
    same = cache.get({"properties": {"a": {"type": "string"}}, "type": "object"})  # key order differs
    assert first is same and cache.misses == 1 and cache.hits == 1
    for n in range(10):
        cache.get({"const": n})
    assert len(cache) == 3
    with pytest.raises(SchemaProblem, match="larger than"):
        SchemaCache(max_schema_chars=100).get({"enum": ["x" * 200]})
    with pytest.raises(SchemaProblem):
        cache.get("not a schema")


def test_schema_cache_is_shared_through_the_registry(registry: Registry) -> None:
    schema = {"type": "object", "required": ["zzz"]}
    a = registry.create({"type": "json_schema"})
    b = registry.create({"type": "json_schema"})
    before = registry.schema_cache.misses
    check([a, b], Output("{}"), _schema_ctx(schema))
    check([a], Output("{}"), _schema_ctx(dict(schema)))
    assert registry.schema_cache.misses == before + 1


def test_many_errors_are_capped(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "json_schema", "schema": {"type": "array", "items": {"type": "integer"}}})
    found = check([v], Output("[" + ",".join('"x"' for _ in range(100)) + "]"), ctx)
    assert len(found) == 26 and found[-1].message == "... and 75 more problems"
