"""Write proxy/schemas/{policy,config}.schema.json from the pydantic models (run after changing them).

    .venv/bin/python scripts/gen_schemas.py          # rewrite the files
    .venv/bin/python scripts/gen_schemas.py --check  # exit 1 when the files are stale

The models give the structure; this script adds what they cannot say: the built-in validator types and
their options (policy files), `key` beside `key_sha256` and `${VAR}` in any scalar (config.yaml).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "proxy" / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

_ALL = ("redact", "reject", "flag")
_NO_REDACT = ("reject", "flag")
_STRINGS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

# type -> (description, on_fail modes it accepts, its options). Kept equal to the registry's names by a test.
VALIDATOR_TYPES: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "json": (
        "The output text must parse as strict JSON (an answer made only of tool calls passes).",
        _NO_REDACT,
        {},
    ),
    "json_schema": (
        "The output must be JSON valid against a Draft 2020-12 schema.",
        _NO_REDACT,
        {
            "schema": {
                "description": "`response_format` (the request's json_schema; the default), an inline "
                "schema, or a path to a .json file relative to the policy.",
                "default": "response_format",
                "anyOf": [{"type": "string"}, {"type": "object"}, {"type": "boolean"}],
            }
        },
    ),
    "regex": (
        "Denied patterns must not match anywhere (text and tool-call arguments); required ones must match. "
        "RE2 syntax (linear time). on_fail redact replaces matches with [REDACTED].",
        _ALL,
        {
            "deny": {**_STRINGS, "description": "Patterns that must not match; (?i) for case-insensitive."},
            "require": {**_STRINGS, "description": "Patterns that must each match somewhere in the text."},
            "max_match": {
                "type": "integer",
                "minimum": 1,
                "description": "Longest text a deny match can span (stream hold-back; default 256).",
            },
        },
    ),
    "length": (
        "Bounds on the answer's length. on_fail redact truncates to max_chars.",
        _ALL,
        {
            "max_chars": {"type": "integer", "minimum": 0},
            "min_chars": {"type": "integer", "minimum": 0},
            "max_tokens": {
                "type": "integer",
                "minimum": 1,
                "description": "Needs tiktoken's encoding offline.",
            },
            "encoding": {"type": "string", "default": "cl100k_base", "description": "Only with max_tokens."},
        },
    ),
    "pii": (
        "Personal data and secrets; on_fail redact puts stable placeholders such as [EMAIL] in their place.",
        _ALL,
        {
            "entities": {
                "type": "array",
                "uniqueItems": True,
                "minItems": 1,
                "items": {"enum": []},  # filled from validators.pii.ENTITIES
                "description": "Which kinds to look for (default: all).",
            }
        },
    ),
    "phrases": (
        "Denied phrases, whole words, case- and look-alike-insensitive.",
        _ALL,
        {"deny": {**_STRINGS, "description": "Phrases that must not appear."}},
    ),
    "tool_calls": (
        "Each tool call must name a declared tool, with arguments valid for its parameters.",
        _NO_REDACT,
        {},
    ),
    "python": (
        "A custom check: fn(output, ctx, **params) returns None/True to pass, or messages to fail.",
        _NO_REDACT,
        {
            "function": {
                "type": "string",
                "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
                "description": "package.module:callable",
            },
            "params": {"type": "object", "description": "Keyword arguments passed to the function."},
        },
    ),
}

POLICY_FIELDS = {
    "name": "Must equal the file's stem (policies/NAME.yaml).",
    "description": "What the policy is for; shown by tools.",
    "mode": "enforce: invalid answers go up the ladder; monitor: never blocks, outcome `flagged`.",
    "validators": "The checks every answer must pass, in order.",
    "on_fail": "The escalation ladder: a subset of repair, reask, fallback, reject, in that order.",
    "reask": "Re-asks per deployment (max).",
    "max_attempts": "Hard cap on upstream calls for one request: retries, re-asks and fallbacks together.",
    "budget": "Stop re-asking and falling back once the attempts have spent max_total_tokens.",
    "cache": "Cache validated answers of this policy; ttl (seconds) overrides the config's.",
    "stream": "buffer: validate the whole answer before sending; passthrough: stream, checking as it goes.",
}


def _validator_defs() -> dict[str, Any]:
    from validators.pii import ENTITIES

    defs: dict[str, Any] = {}
    rules = []
    for name, (description, on_fail, options) in VALIDATOR_TYPES.items():
        props = copy.deepcopy(options)
        if name == "pii":
            props["entities"]["items"]["enum"] = list(ENTITIES)
        title = "".join(part.title() for part in name.split("_")) + "Validator"
        defs[title] = {
            "title": title,
            "description": description,
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"const": name},
                **props,
                "on_fail": {
                    "enum": list(on_fail),
                    "description": "Override the ladder for this "
                    "validator: redact in place, reject at once, or only flag.",
                },
            },
        }
        rules.append(
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"$ref": f"#/$defs/{title}"},
            }
        )
    defs["Validator"] = {
        "title": "Validator",
        "description": "One check; `type` picks it, the other keys are its options.",
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(VALIDATOR_TYPES), "description": "The validator type."}},
        "allOf": rules,
    }
    return defs


def policy_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file."""
    from proxy.policy import PolicySpec

    schema = PolicySpec.model_json_schema()
    _drop_path_format(schema)
    schema["$defs"] = {**schema.get("$defs", {}), **_validator_defs()}
    props = schema["properties"]
    props["validators"] = {"type": "array", "items": {"$ref": "#/$defs/Validator"}, "default": []}
    props["on_fail"]["uniqueItems"] = True
    for key, text in POLICY_FIELDS.items():
        props[key]["description"] = text
    schema["properties"] = {"$schema": {"type": "string"}, **props}
    return _finish(schema, "guardproxy policy (policies/NAME.yaml)")


def config_schema() -> dict[str, Any]:
    """The JSON Schema of config.yaml."""
    from proxy.settings import Settings

    schema = Settings.model_json_schema()
    _drop_path_format(schema)
    schema["properties"].pop("config_path", None)  # set by the loader, not by the file
    schema["properties"] = {"$schema": {"type": "string"}, **schema["properties"]}
    key = schema["$defs"]["ApiKey"]
    key["properties"] = {
        "name": key["properties"]["name"],
        "key": {
            "type": "string",
            "minLength": 1,
            "description": "The key itself, usually ${ENV_VAR}; hashed at load.",
        },
        **key["properties"],
    }
    key["properties"]["key_sha256"]["pattern"] = "^[0-9a-fA-F]{64}$"
    key["required"] = ["name"]
    key["oneOf"] = [{"required": ["key"]}, {"required": ["key_sha256"]}]
    schema["$defs"]["EnvVar"] = {
        "type": "string",
        "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
        "description": "${VAR} or ${VAR:-default}, expanded at load.",
    }
    for model in [schema, *schema["$defs"].values()]:
        for name, prop in model.get("properties", {}).items():
            if name != "$schema":
                model["properties"][name] = _allow_env(prop)
    return _finish(schema, "guardproxy config.yaml")


def _allow_env(prop: dict[str, Any]) -> dict[str, Any]:
    """Let a constrained scalar also be written as ${VAR} (expanded, then validated, at load)."""
    if "$ref" in prop or prop.get("type") in ("object", "array") or _any_string(prop):
        return prop
    if "anyOf" in prop:
        if any(_any_string(branch) for branch in prop["anyOf"]):
            return prop
        return {**prop, "anyOf": [*prop["anyOf"], {"$ref": "#/$defs/EnvVar"}]}
    outer: dict[str, Any] = {k: prop[k] for k in ("title", "description", "default") if k in prop}
    inner = {k: v for k, v in prop.items() if k not in outer}
    return {**outer, "anyOf": [inner, {"$ref": "#/$defs/EnvVar"}]}


def _any_string(node: dict[str, Any]) -> bool:
    return node.get("type") == "string" and not {"enum", "const", "pattern", "minLength", "maxLength"} & set(
        node
    )


def _finish(schema: dict[str, Any], title: str) -> dict[str, Any]:
    head = {"$schema": DRAFT, "title": title}
    return {**head, **{k: v for k, v in schema.items() if k != "title"}}


def _drop_path_format(node: Any) -> None:
    """pydantic's `format: path` is not a JSON Schema format; editors would flag it."""
    if isinstance(node, dict):
        if node.get("format") == "path":
            del node["format"]
        for value in node.values():
            _drop_path_format(value)
    elif isinstance(node, list):
        for value in node:
            _drop_path_format(value)


def render(schema: dict[str, Any]) -> str:
    """The file text of a schema."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def build() -> dict[Path, str]:
    """Every schema file and its text."""
    return {
        SCHEMAS / "policy.schema.json": render(policy_schema()),
        SCHEMAS / "config.schema.json": render(config_schema()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a schema file is out of date")
    args = parser.parse_args()
    stale = []
    for path, text in build().items():
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date: run scripts/gen_schemas.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
