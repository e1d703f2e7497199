"""The shipped policies: their cases pass under `guardproxy policy test`, and the JSON Schemas hold."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from proxy.policytest import run_policy_test
from validators import ValidatorConfigError, default_registry

REPO = Path(__file__).resolve().parent.parent
POLICIES = sorted(p for p in (REPO / "policies").glob("*.yaml") if not p.name.endswith(".cases.yaml"))
REQUIRED = {"default", "strict-json", "pii-redact", "brand-safety", "support-bot", "tool-calls"}
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)


def policy_test(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "policy", "test", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cases_of(policy: Path) -> list[dict[str, Any]]:
    cases = yaml.safe_load(policy.with_name(f"{policy.stem}.cases.yaml").read_text())
    assert isinstance(cases, list)
    return cases


@pytest.fixture(scope="module")
def shipped_runs() -> dict[str, tuple[int, str, str]]:
    """`guardproxy policy test` on every shipped policy, the processes run side by side."""
    procs = {
        p.stem: subprocess.Popen(
            [sys.executable, "-m", "proxy", "policy", "test", str(p.relative_to(REPO))],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in POLICIES
    }
    runs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        runs[name] = (proc.returncode, out, err)
    return runs


def test_the_documented_policies_are_shipped():
    assert REQUIRED <= {p.stem for p in POLICIES}


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.stem)
def test_shipped_policy_passes_its_cases(policy: Path, shipped_runs: dict[str, tuple[int, str, str]]):
    code, out, err = shipped_runs[policy.stem]
    assert code == 0, out + err
    cases = cases_of(policy)
    assert len(cases) >= 5
    assert [m.groups() for m in SUMMARY.finditer(out)] == [(str(len(cases)), "0")]
    assert out.splitlines()[0].split() == ["case", "verdict", "outcome", "repairs", "violations"]
    for case in cases:
        row = next(line for line in out.splitlines() if line.startswith(case["name"] + "  "))
        assert row[len(case["name"]) :].split()[0] == "PASS"
        if "outcome" in case.get("expect", {}):
            assert row[len(case["name"]) :].split()[1] == case["expect"]["outcome"]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.stem)
def test_shipped_cases_check_more_than_one_outcome(policy: Path):
    expected = [case.get("expect", {}) for case in cases_of(policy)]
    outcomes = {e["outcome"] for e in expected if "outcome" in e}
    assert "pass" in outcomes and len(outcomes) >= 2
    assert sum(1 for e in expected if e) >= 5


def test_shipped_cases_cover_every_offline_outcome():
    outcomes = {c.get("expect", {}).get("outcome") for p in POLICIES for c in cases_of(p)}
    assert {"pass", "repaired", "redacted", "flagged", "rejected"} <= outcomes


def test_a_wrong_expectation_fails_and_names_the_case(tmp_path: Path):
    cases = cases_of(REPO / "policies" / "strict-json.yaml")
    target = next(c for c in cases if c["name"] == "coercion by the schema")
    target["expect"]["outcome"] = "pass"
    path = tmp_path / "wrong.cases.yaml"
    path.write_text(yaml.safe_dump(cases, sort_keys=False))
    result = policy_test(REPO / "policies" / "strict-json.yaml", path)
    assert result.returncode == 1
    assert [m.groups() for m in SUMMARY.finditer(result.stdout)] == [(str(len(cases) - 1), "1")]
    row = next(line for line in result.stdout.splitlines() if line.startswith("coercion by the schema "))
    assert row.split()[4:6] == ["FAIL", "repaired"]
    assert "FAIL coercion by the schema\n  outcome: expected pass, got repaired" in result.stdout


def test_wrong_content_and_violations_are_reported(tmp_path: Path):
    policy = tmp_path / "p.yaml"
    policy.write_text("name: p\nvalidators:\n  - type: pii\n    on_fail: redact\n")
    cases = tmp_path / "p.cases.yaml"
    cases.write_text(
        "- name: mail\n  output: write to a@example.com\n"
        "  expect: {outcome: redacted, violations: [regex], content: write to a@example.com}\n"
    )
    out = io.StringIO()
    assert run_policy_test(policy, None, stdout=out, stderr=io.StringIO()) == 1
    text = out.getvalue()
    assert "  violations: expected regex, got pii" in text
    assert "  content: expected 'write to a@example.com', got 'write to [EMAIL]'" in text
    assert "0 passed, 1 failed" in text


def test_a_bad_cases_file_is_reported_with_file_and_line(tmp_path: Path):
    cases = tmp_path / "bad.cases.yaml"
    cases.write_text(
        "- name: one\n  output: hi\n  expect:\n    outcome: passed\n"
        "- name: one\n  output: hi\n  expect: {violations: [json-schema]}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_policy_test(REPO / "policies" / "default.yaml", cases, stdout=out, stderr=err) == 1
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        f"{cases}:4: [0].expect.outcome: outcome must be one of pass, repaired, redacted, flagged, rejected, "
        "not 'passed' (did you mean 'pass'?)",
        f"{cases}:5: [1].name: duplicate case name 'one'",
        f"{cases}:7: [1].expect.violations[0]: unknown validator 'json-schema' (did you mean 'json_schema'?)",
    ]


def test_reasked_is_not_an_offline_outcome(tmp_path: Path):
    cases = tmp_path / "c.yaml"
    cases.write_text("- name: x\n  output: hi\n  expect: {outcome: reasked}\n")
    err = io.StringIO()
    assert run_policy_test(REPO / "policies" / "default.yaml", cases, stdout=io.StringIO(), stderr=err) == 1
    assert "rejected (would re-ask)" in err.getvalue()


def test_missing_sibling_cases_file(tmp_path: Path):
    policy = tmp_path / "lonely.yaml"
    policy.write_text("name: lonely\n")
    err = io.StringIO()
    assert run_policy_test(policy, None, stdout=io.StringIO(), stderr=err) == 1
    assert err.getvalue().startswith(f"{tmp_path / 'lonely.cases.yaml'}:1: (file): no such cases file")


def test_monitor_mode_flags_instead_of_rejecting(tmp_path: Path):
    text = (REPO / "policies" / "brand-safety.yaml").read_text()
    policy = tmp_path / "brand-monitor.yaml"
    policy.write_text(
        text.replace("name: brand-safety", "name: brand-monitor").replace("mode: enforce", "mode: monitor")
    )
    (tmp_path / "brand-monitor.cases.yaml").write_text(
        "- name: competitor\n  output: Faster than Globex.\n"
        "  expect: {outcome: flagged, violations: [phrases]}\n"
        "- name: profanity\n  output: It boils damn fast.\n"
        "  expect: {outcome: redacted, content: 'It boils [REDACTED] fast.'}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_policy_test(policy, None, stdout=out, stderr=err) == 0, out.getvalue() + err.getvalue()


def test_a_ladder_without_reask_or_fallback_says_so(tmp_path: Path):
    policy = tmp_path / "p.yaml"
    policy.write_text("name: p\nvalidators:\n  - type: json\non_fail: [repair, reject]\n")
    (tmp_path / "p.cases.yaml").write_text("- name: prose\n  output: hello\n  expect: {outcome: rejected}\n")
    out = io.StringIO()
    assert run_policy_test(policy, None, stdout=out, stderr=io.StringIO()) == 0
    row = out.getvalue().splitlines()[1].split()
    assert row[:4] == ["prose", "PASS", "rejected", "-"] and "would" not in out.getvalue()


# --- JSON Schemas -------------------------------------------------------------------------------


def gen_schemas() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_schemas", REPO / "scripts" / "gen_schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO / "proxy" / "schemas" / f"{name}.schema.json").read_text())
    return loaded


def errors(schema_doc: dict[str, Any], data: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema_doc)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


def test_schema_files_are_in_sync_with_the_models():
    gen = gen_schemas()
    for path, text in gen.build().items():
        assert json.loads(path.read_text()) == json.loads(text), (
            f"{path.name} is stale: run scripts/gen_schemas.py"
        )


@pytest.mark.parametrize("name", ["policy", "config"])
def test_schemas_are_valid_draft_2020_12(name: str):
    doc = schema(name)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(doc)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.stem)
def test_shipped_policy_matches_the_schema_and_references_it(policy: Path):
    text = policy.read_text()
    assert text.startswith("# yaml-language-server: $schema=../proxy/schemas/policy.schema.json\n")
    assert errors(schema("policy"), yaml.safe_load(text)) == []


def test_shipped_config_matches_the_schema():
    assert errors(schema("config"), yaml.safe_load((REPO / "config.yaml").read_text())) == []


def test_policy_schema_catches_what_the_loader_catches():
    bad = {
        "name": "x",
        "on_fial": ["reject"],
        "validators": [
            {"type": "regx"},
            {"type": "phrases", "denny": ["a"]},
            {"type": "json", "on_fail": "redact"},
            {"type": "pii", "entities": ["emial"]},
        ],
        "on_fail": ["repair", "repair"],
    }
    found = errors(schema("policy"), bad)
    for where in [
        "[]",
        "['validators', 0, 'type']",
        "['validators', 1]",
        "['validators', 2, 'on_fail']",
        "['validators', 3, 'entities', 0]",
        "['on_fail']",
    ]:
        assert any(e.startswith(where + ":") for e in found), (where, found)


def test_config_schema_allows_keys_and_environment_variables():
    config = {
        "server": {"port": "${PORT:-8080}"},
        "auth": {"keys": [{"name": "a", "key": "${TEAM_A_KEY}"}, {"name": "b", "key_sha256": "AB" * 32}]},
        "models": {"m": {"deployments": [{"model": "mock/echo", "timeout": "${T:-5}"}]}},
        "cache": {"backend": "${CACHE_BACKEND:-disk}"},
    }
    assert errors(schema("config"), config) == []
    no_key = {"auth": {"keys": [{"name": "a"}]}}
    both = {"auth": {"keys": [{"name": "a", "key": "k", "key_sha256": "ab" * 32}]}}
    assert errors(schema("config"), no_key) and errors(schema("config"), both)
    assert errors(schema("config"), {"server": {"port": "eighty"}})
    assert errors(schema("config"), {"config_path": "/x"})


def test_schema_validator_types_match_the_registry():
    registry = default_registry(plugins=False)
    assert sorted(gen_schemas().VALIDATOR_TYPES) == registry.names()


MINIMAL = {
    "json": {},
    "json_schema": {},
    "regex": {"deny": ["x"]},
    "length": {"max_chars": 10},
    "pii": {},
    "phrases": {"deny": ["x"]},
    "tool_calls": {},
    "python": {"function": "json:dumps"},
}


@pytest.mark.parametrize("type_name", sorted(MINIMAL))
def test_schema_options_are_the_factory_options(type_name: str):
    registry = default_registry(plugins=False)
    props = schema("policy")["$defs"]["Validator"]["allOf"]
    (rule,) = [r for r in props if r["if"]["properties"]["type"]["const"] == type_name]
    definition = schema("policy")["$defs"][rule["then"]["$ref"].rsplit("/", 1)[1]]
    options = set(definition["properties"]) - {"type", "on_fail"}
    for option in options:  # the factory knows the option: a bad value is refused for its value
        with pytest.raises(ValidatorConfigError) as info:
            registry.create({"type": type_name, **MINIMAL[type_name], option: object()})
        assert "unknown option" not in str(info.value), (option, str(info.value))
    with pytest.raises(ValidatorConfigError, match="unknown option"):
        registry.create({"type": type_name, **MINIMAL[type_name], "bogus_option": 1})
    allowed = set(definition["properties"]["on_fail"]["enum"])
    for mode in ("redact", "reject", "flag"):
        spec = {"type": type_name, **MINIMAL[type_name], "on_fail": mode}
        if mode in allowed:
            assert registry.create(spec).on_fail == mode
        else:
            with pytest.raises(ValidatorConfigError):
                registry.create(spec)
