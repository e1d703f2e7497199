"""schema_gen: deterministic values that validate against a broad set of JSON Schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from proxy.mock.schema_gen import SchemaGenError, generate

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}

TREE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["value", "children"],
        }
    },
    "$ref": "#/$defs/node",
}

LINKED_LIST = {
    "type": "object",
    "properties": {"head": {"type": "string"}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
    "required": ["head", "next"],
}

SCHEMAS: dict[str, Any] = {
    "person": PERSON,
    "empty_object": {"type": "object"},
    "true_schema": True,
    "empty_schema": {},
    "enum": {"type": "string", "enum": ["red", "green", "blue"]},
    "const": {"const": {"fixed": [1, 2]}},
    "mixed_enum_typed": {"type": "integer", "enum": ["a", 3, None, 7]},
    "nested": {
        "type": "object",
        "properties": {
            "order": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "lines": {
                        "type": "array",
                        "minItems": 2,
                        "items": {
                            "type": "object",
                            "properties": {
                                "sku": {"type": "string"},
                                "qty": {"type": "integer", "minimum": 1},
                            },
                            "required": ["sku", "qty"],
                        },
                    },
                },
                "required": ["id", "lines"],
            }
        },
        "required": ["order"],
    },
    "formats": {
        "type": "object",
        "properties": {
            f: {"type": "string", "format": f}
            for f in (
                "date",
                "date-time",
                "time",
                "email",
                "uri",
                "uuid",
                "ipv4",
                "ipv6",
                "hostname",
                "duration",
            )
        },
        "required": ["date", "date-time", "email", "uri", "uuid"],
    },
    "recursive_tree": TREE,
    "recursive_anyof_root": LINKED_LIST,
    "definitions_draft7_style": {
        "definitions": {"pt": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "type": "array",
        "items": {"$ref": "#/definitions/pt"},
        "minItems": 3,
    },
    "anyof_scalars": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": 10}]},
    "oneof_overlapping": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
    "oneof_objects": {
        "oneOf": [
            {
                "type": "object",
                "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}},
                "required": ["kind"],
            },
            {
                "type": "object",
                "properties": {"kind": {"const": "b"}, "y": {"type": "string"}},
                "required": ["kind"],
            },
        ]
    },
    "allof_merge": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer", "minimum": 5}}, "required": ["a"]},
            {"properties": {"a": {"maximum": 6}, "b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
    "nullable_type_list": {
        "type": "object",
        "properties": {"maybe": {"type": ["string", "null"]}, "n": {"type": ["null", "integer"]}},
        "required": ["maybe", "n"],
    },
    "number_bounds": {
        "type": "object",
        "properties": {
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "neg": {"type": "integer", "maximum": -50},
            "step": {"type": "integer", "multipleOf": 7, "minimum": 10, "maximum": 30},
            "half": {"type": "number", "multipleOf": 0.5, "minimum": 1, "maximum": 2},
        },
        "required": ["ratio", "neg", "step", "half"],
    },
    "string_lengths": {
        "type": "array",
        "prefixItems": [{"type": "string", "minLength": 30}, {"type": "string", "maxLength": 2}],
        "items": False,
        "minItems": 2,
    },
    "patterns": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
            "slug": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "minLength": 5},
            "phone": {"type": "string", "pattern": "^\\+?[0-9]{10,12}$"},
            "either": {"type": "string", "pattern": "^(yes|no)$"},
        },
        "required": ["code", "slug", "phone", "either"],
    },
    "unique_items": {
        "type": "array",
        "items": {"enum": ["a", "b", "c"]},
        "uniqueItems": True,
        "minItems": 3,
    },
    "min_max_properties": {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "minProperties": 3,
    },
    "pattern_properties_only": {
        "type": "object",
        "patternProperties": {"^x-[a-z]+$": {"type": "boolean"}},
        "additionalProperties": False,
        "minProperties": 2,
    },
    "contains": {"type": "array", "items": {"type": "integer"}, "contains": {"const": 42}, "maxItems": 2},
    "inferred_types": {"properties": {"s": {"minLength": 3}, "n": {"minimum": 3}}, "required": ["s", "n"]},
    "not_keyword": {"type": "string", "enum": ["a", "b"], "not": {"const": "a"}},
    "if_then_else": {
        "type": "object",
        "properties": {"kind": {"enum": ["x", "y"]}, "x": {"type": "integer"}},
        "required": ["kind"],
        "if": {"properties": {"kind": {"const": "x"}}},
        "then": {"required": ["x"]},
    },
    "anchor_ref": {
        "$defs": {"item": {"$anchor": "item", "type": "string", "format": "date"}},
        "type": "array",
        "items": {"$ref": "#item"},
        "minItems": 1,
    },
    "ref_with_siblings": {
        "$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
        "$ref": "#/$defs/base",
        "properties": {"label": {"type": "string"}},
        "required": ["label"],
    },
    "openai_strict_style": {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                    "required": ["explanation", "output"],
                    "additionalProperties": False,
                },
            },
            "final_answer": {"type": "string"},
        },
        "required": ["steps", "final_answer"],
        "additionalProperties": False,
    },
    "dependent_required": {
        "type": "object",
        "properties": {"card": {"type": "string"}, "billing": {"type": "string"}},
        "dependentRequired": {"card": ["billing"]},
    },
    "pointer_escapes": {"$defs": {"a/b": {"type": "integer", "minimum": 3}}, "$ref": "#/$defs/a~1b"},
}


def _validator(schema: Any) -> Any:
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_there_are_at_least_twenty_schemas() -> None:
    assert len(SCHEMAS) >= 20


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_generated_value_is_valid(name: str, seed: int) -> None:
    schema = SCHEMAS[name]
    value = generate(schema, seed=seed)
    errors = [e.message for e in _validator(schema).iter_errors(value)]
    assert errors == [], (name, value)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_generation_is_deterministic(name: str) -> None:
    assert generate(SCHEMAS[name], seed=3) == generate(SCHEMAS[name], seed=3)


def test_seed_changes_the_value() -> None:
    values = {repr(generate(PERSON, seed=s)) for s in range(6)}
    assert len(values) > 1


def test_optional_properties_are_included_at_shallow_depth() -> None:
    value = generate(PERSON)
    assert set(value) == {"name", "age", "email", "tags"}


def test_recursion_is_bounded_and_still_valid() -> None:
    value = generate(TREE, seed=5)
    depth, node = 0, value
    while node["children"]:
        node, depth = node["children"][0], depth + 1
    assert depth < 10
    chain, link = 0, generate(LINKED_LIST)
    while link["next"] is not None:
        link, chain = link["next"], chain + 1
    assert chain < 10


def test_formats_have_the_expected_shape() -> None:
    value = generate(SCHEMAS["formats"], seed=2)
    assert len(value["date"]) == 10 and value["date"][4] == "-"
    assert "T" in value["date-time"]
    assert "@" in value["email"]
    assert value["uri"].startswith("https://")
    assert len(value["uuid"]) == 36


@pytest.mark.parametrize(
    "schema",
    [
        False,
        {"type": "integer", "minimum": 5, "maximum": 4},
        {"allOf": [{"type": "string"}, {"type": "integer"}]},
        {"enum": []},
        {"$ref": "https://example.com/other.json"},
        {"$ref": "#/$defs/missing"},
        {"type": "object", "properties": {"loop": {"$ref": "#"}}, "required": ["loop"]},
        {"type": "integer", "multipleOf": 10, "minimum": 1, "maximum": 9},
    ],
)
def test_unsatisfiable_or_unsupported_schemas_raise(schema: Any) -> None:
    with pytest.raises(SchemaGenError):
        generate(schema)
