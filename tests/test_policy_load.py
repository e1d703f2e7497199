"""Loading policy files: every mistake reported as FILE:LINE: where: what, with a did-you-mean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.policy import load_policies, load_policy
from proxy.yamlfile import ConfigError
from validators import default_registry

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
name: {name}
description: a test policy
validators:
  - type: json
  - type: regex
    deny: ["(?i)as an ai language model"]
on_fail: [repair, reask, fallback, reject]
"""


def write(tmp_path: Path, text: str, name: str = "mine") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_policy(path, default_registry(plugins=False))
    return [str(p) for p in info.value.problems]


def test_good_policy_loads(tmp_path):
    policy = load_policy(write(tmp_path, GOOD.format(name="mine")), default_registry(plugins=False))
    assert policy.name == "mine"
    assert [v.type for v in policy.validators] == ["json", "regex"]
    assert policy.spec.on_fail == ("repair", "reask", "fallback", "reject")
    assert len(policy.content_hash) == 64


def test_unknown_top_level_key_with_did_you_mean(tmp_path):
    path = write(tmp_path, "name: mine\nvalidators: []\non_fial: [reject]\n")
    assert problems(path) == [f"{path}:3: on_fial: unknown key 'on_fial' (did you mean 'on_fail'?)"]


def test_unknown_nested_key_with_did_you_mean(tmp_path):
    path = write(tmp_path, "name: mine\nreask:\n  maxx: 2\n")
    assert problems(path) == [f"{path}:3: reask.maxx: unknown key 'maxx' (did you mean 'max'?)"]


def test_unknown_validator_type_with_did_you_mean(tmp_path):
    path = write(tmp_path, "name: mine\nvalidators:\n  - type: json\n  - type: regx\n    deny: [x]\n")
    assert problems(path) == [
        f"{path}:4: validators[1].type: unknown validator 'regx' (did you mean 'regex'?)"
    ]


def test_unknown_validator_option_with_did_you_mean(tmp_path):
    path = write(tmp_path, "name: mine\nvalidators:\n  - type: phrases\n    denny: [acme]\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:4: validators[0].denny: ")
    assert "unknown option 'denny'" in line and "(did you mean 'deny'?)" in line


def test_bad_regex_names_the_pattern_and_line(tmp_path):
    path = write(tmp_path, 'name: mine\nvalidators:\n  - type: regex\n    deny: ["ok", "(unclosed"]\n')
    (line,) = problems(path)
    assert line.startswith(f"{path}:4: validators[0].deny[1]: ")
    assert "'(unclosed'" in line


def test_name_must_equal_the_file_stem(tmp_path):
    path = write(tmp_path, GOOD.format(name="other"), name="mine")
    assert problems(path) == [f"{path}:1: name: name 'other' must equal the file's stem 'mine'"]


def test_ladder_out_of_order(tmp_path):
    path = write(tmp_path, "name: mine\nvalidators: []\non_fail: [reask, repair, reject]\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:3: on_fail: ")
    assert "repair, reask, fallback, reject" in line


def test_unknown_ladder_step(tmp_path):
    path = write(tmp_path, "name: mine\non_fail: [repair, retry]\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:2: on_fail[1]: ")
    assert "'repair', 'reask', 'fallback' or 'reject'" in line


def test_on_fail_mode_the_validator_cannot_do(tmp_path):
    path = write(tmp_path, "name: mine\nvalidators:\n  - type: json\n    on_fail: redact\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:4: validators[0].on_fail: ")
    assert "reject, flag" in line


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        "name: other\nvalidators:\n  - type: jsn\n  - type: pii\n    entities: [emial]\n",
        name="mine",
    )
    found = problems(path)
    assert f"{path}:1: name: name 'other' must equal the file's stem 'mine'" in found
    assert f"{path}:3: validators[0].type: unknown validator 'jsn' (did you mean 'json'?)" in found
    assert any(
        p.startswith(f"{path}:5: validators[1].entities") and "did you mean 'email'" in p for p in found
    )
    assert len(found) == 3


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = write(tmp_path, "name: mine\nvalidators:\n  - type: json\n   bad: [\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:")
    assert "invalid YAML" in line


def test_load_policies_collects_every_file_and_skips_cases(tmp_path):
    write(tmp_path, GOOD.format(name="good"), name="good")
    write(tmp_path, "name: broken\nmode: enforced\n", name="broken")
    (tmp_path / "good.cases.yaml").write_text("- name: a\n  output: hi\n")
    with pytest.raises(ConfigError) as info:
        load_policies(tmp_path, default_registry(plugins=False), required=["good", "missing"])
    found = [str(p) for p in info.value.problems]
    assert any(p.startswith(f"{tmp_path / 'broken.yaml'}:2: mode: ") for p in found)
    assert f"{tmp_path / 'missing.yaml'}:1: (file): policy 'missing' is referenced but missing" in found
    assert len(found) == 2


def test_policy_test_command_reports_a_broken_policy(tmp_path):
    path = write(tmp_path, "name: mine\nvalidators:\n  - type: regx\n")
    (tmp_path / "mine.cases.yaml").write_text("- name: a\n  output: hi\n")
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "policy", "test", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"{path}:3: validators[0].type: unknown validator 'regx' (did you mean 'regex'?)" in result.stderr
