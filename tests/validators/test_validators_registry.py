"""Registry, option checking, entry points, the public surface, and the no-proxy rule."""

from __future__ import annotations

import ast
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import validators
from validators import (
    BuildContext,
    Output,
    Registry,
    RequestContext,
    ValidatorConfigError,
    Violation,
    check,
    default_registry,
    implicit_validators,
)
from validators.registry import ENTRY_POINT_GROUP

PACKAGE = Path(validators.__file__).resolve().parent


REQUIRED_API = {
    "Output",
    "RequestContext",
    "Violation",
    "Validator",
    "Registry",
    "default_registry",
    "ValidatorConfigError",
    "check",
    "repair",
    "RepairResult",
    "redact",
    "build_reask",
    "StreamGuard",
    "implicit_validators",
}


def test_all_is_sorted_and_complete() -> None:
    exported = validators.__all__
    assert exported == sorted(exported)
    assert REQUIRED_API <= set(exported)
    imported = {
        n for n, v in vars(validators).items() if not n.startswith("_") and not isinstance(v, type(ast))
    }
    assert imported == set(exported)


def test_the_library_never_imports_proxy_or_litellm() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert root not in {"proxy", "litellm", "aiohttp", "httpx", "requests", "socket"}, (
                    path,
                    name,
                )


def test_modules_stay_small() -> None:
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) < 300, path.name


def test_builtins_are_registered(registry: Registry) -> None:
    assert registry.names() == sorted(
        ["json", "json_schema", "regex", "length", "pii", "phrases", "tool_calls", "python"]
    )


def test_unknown_type_is_an_error_with_a_suggestion(registry: Registry) -> None:
    with pytest.raises(ValidatorConfigError) as err:
        registry.create({"type": "regx", "deny": ["x"]})
    assert err.value.key == "type"
    assert str(err.value) == "unknown validator 'regx' (did you mean 'regex'?)"


@pytest.mark.parametrize(
    ("spec", "key", "fragment"),
    [
        ({"type": "regex", "denny": ["x"]}, "denny", "did you mean 'deny'?"),
        ({"type": "pii", "entites": ["email"]}, "entites", "did you mean 'entities'?"),
        ({"type": "pii", "entities": ["emial"]}, "entities", "did you mean 'email'?"),
        ({"type": "regex", "deny": ["ok", "(?<=a)b"]}, "deny", "invalid pattern '(?<=a)b'"),
        ({"type": "regex", "deny": ["(unclosed"]}, "deny", "invalid pattern '(unclosed'"),
        ({"type": "json_schema", "schema": {"type": "objekt"}}, "schema", "invalid JSON Schema"),
        ({"type": "json_schema", "schema": 42}, "schema", "inline schema mapping"),
        ({"type": "json_schema", "schema": {"pattern": "(a)\\1"}}, "schema", "pattern"),
        ({"type": "json_schema", "schema": "missing.json"}, "schema", "cannot read schema file"),
        ({"type": "python", "function": "no_such_module_xyz:check"}, "function", "cannot import module"),
        ({"type": "python", "function": "json:JSONDecoderr"}, "function", "did you mean 'JSONDecoder'?"),
        ({"type": "python", "function": "json.dumps"}, "function", "module:callable"),
        ({"type": "json", "on_fail": "redact"}, "on_fail", "reject, flag"),
        ({"type": "pii", "on_fail": "redcat"}, "on_fail", "did you mean 'redact'?"),
        ({"type": "length"}, "max_chars", "max_chars"),
        ({"type": "length", "max_chars": -1}, "max_chars", ">= 0"),
        ({"type": "regex"}, "deny", "at least one pattern"),
        ({"type": "phrases", "deny": []}, "deny", "at least one phrase"),
    ],
)
def test_bad_options_name_the_key(registry: Registry, spec: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ValidatorConfigError) as err:
        registry.create(spec, base_dir=Path("/nonexistent"))
    assert err.value.key == key
    assert fragment in str(err.value)


def test_index_points_at_the_bad_list_item(registry: Registry) -> None:
    with pytest.raises(ValidatorConfigError) as err:
        registry.create({"type": "regex", "deny": ["fine", "also fine", "(?=x)"]})
    assert err.value.index == 2


def test_schema_file_is_loaded_relative_to_base_dir(
    registry: Registry, tmp_path: Path, ctx: RequestContext
) -> None:
    (tmp_path / "s.json").write_text('{"type": "object", "required": ["a"]}', encoding="utf-8")
    v = registry.create({"type": "json_schema", "schema": "s.json"}, base_dir=tmp_path)
    assert check([v], Output('{"a": 1}'), ctx) == []
    assert [x.path for x in check([v], Output("{}"), ctx)] == ["/a"]
    (tmp_path / "bad.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(ValidatorConfigError, match="not valid JSON"):
        registry.create({"type": "json_schema", "schema": "bad.json"}, base_dir=tmp_path)


class _Upper:
    type = "upper"
    on_fail = None

    def __init__(self, words: list[str]) -> None:
        self.words = words

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        return [
            Violation("upper", f"{w!r} must be upper case") for w in self.words if w in (output.text or "")
        ]


def _upper_factory(spec: Mapping[str, Any], context: BuildContext) -> _Upper:
    return _Upper(list(spec.get("words", [])))


def test_third_party_factories_register_like_builtins(ctx: RequestContext) -> None:
    registry = Registry()
    registry.register("upper", _upper_factory)
    v = registry.create({"type": "upper", "words": ["hello"]})
    assert check([v], Output("hello there"), ctx) == [Violation("upper", "'hello' must be upper case")]
    with pytest.raises(ValueError, match="already registered"):
        registry.register("upper", _upper_factory)


def test_entry_point_plugins_are_loaded(monkeypatch: pytest.MonkeyPatch, ctx: RequestContext) -> None:
    ep = importlib.metadata.EntryPoint(
        name="upper", value=f"{__name__}:_upper_factory", group=ENTRY_POINT_GROUP
    )
    broken = importlib.metadata.EntryPoint(
        name="broken", value="no_such_plugin_mod:f", group=ENTRY_POINT_GROUP
    )

    def fake(group: str) -> list[importlib.metadata.EntryPoint]:
        return [ep, broken] if group == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    registry = default_registry()
    assert "upper" in registry.names()
    assert check([registry.create({"type": "upper", "words": ["x"]})], Output("x"), ctx)
    with pytest.raises(ValidatorConfigError, match="cannot load validator plugin"):
        registry.create({"type": "broken"})


def test_plugin_that_shadows_a_builtin_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = importlib.metadata.EntryPoint(
        name="regex", value=f"{__name__}:_upper_factory", group=ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [ep])
    with pytest.raises(ValidatorConfigError, match="already exists"):
        default_registry()


def no_prices(output: Output, ctx: RequestContext, currency: str = "$") -> list[dict[str, str]]:
    """A custom check for the `python` validator: the text must not mention a price."""
    return (
        [{"message": f"mentions a price in {currency}", "path": "/"}]
        if currency in (output.text or "")
        else []
    )


def explodes(output: Output, ctx: RequestContext) -> None:
    """A custom check with a bug."""
    raise RuntimeError("bug in the check")


def returns_verdicts(output: Output, ctx: RequestContext) -> Any:
    """A custom check returning the other accepted verdict shapes."""
    return {"ok": None, "no": False, "msg": "too vague", "many": ["a", Violation("python", "b", "/x")]}[
        output.text or ""
    ]


def test_python_validator_calls_the_function(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "python", "function": f"{__name__}:no_prices", "params": {"currency": "€"}})
    assert check([v], Output("costs €5"), ctx) == [Violation("python", "mentions a price in €", "/")]
    assert check([v], Output("free"), ctx) == []
    boom = registry.create({"type": "python", "function": f"{__name__}:explodes"})
    [violation] = check([boom], Output("x"), ctx)
    assert "raised RuntimeError" in violation.message
    shapes = registry.create(
        {"type": "python", "function": f"{__name__}:returns_verdicts", "on_fail": "flag"}
    )
    assert shapes.on_fail == "flag"
    assert check([shapes], Output("ok"), ctx) == []
    assert [x.message for x in check([shapes], Output("no"), ctx)] == [
        f"the output failed the check {__name__}:returns_verdicts"
    ]
    assert check([shapes], Output("msg"), ctx) == [Violation("python", "too vague")]
    assert check([shapes], Output("many"), ctx) == [Violation("python", "a"), Violation("python", "b", "/x")]


def test_a_crashing_plugin_fails_closed(ctx: RequestContext) -> None:
    class Crash:
        type = "crash"
        on_fail = None

        def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
            raise KeyError("bug")

    [violation] = check([Crash()], Output("x"), ctx)
    assert violation.validator == "crash"
    assert "could not be checked" in violation.message


def test_implicit_validators_follow_response_format(registry: Registry) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    ctx = RequestContext(response_format=rf)
    found = implicit_validators(registry, ctx)
    assert [v.type for v in found] == ["json", "json_schema"]
    assert [v.path for v in check(found, Output('{"a": "1"}'), ctx)] == ["/a"]
    assert implicit_validators(registry, RequestContext({"type": "json_object"}))[0].type == "json"
    assert implicit_validators(registry, RequestContext({"type": "text"})) == []
    existing = [registry.create({"type": "json"}), registry.create({"type": "json_schema"})]
    assert implicit_validators(registry, ctx, existing) == []


def test_violation_to_dict() -> None:
    assert Violation("json", "bad", "/a").to_dict() == {"validator": "json", "message": "bad", "path": "/a"}
