"""`guardproxy check` on good and bad configs: exit code and FILE:LINE: where: what."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_check(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env=env,
    )


def test_shipped_config_is_valid():
    result = run_check(REPO / "config.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "policies").mkdir(exist_ok=True)
    for shipped in (REPO / "policies").glob("*.yaml"):
        (tmp_path / "policies" / shipped.name).write_text(shipped.read_text())
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_unknown_key_with_did_you_mean(tmp_path):
    config = write(
        tmp_path,
        "server:\n  port: 8080\n  max_in_flite: 3\nmodels:\n  a:\n    deployments:\n"
        "      - model: mock/echo\n",
    )
    result = run_check(config)
    assert result.returncode == 1
    assert (
        f"{config}:3: server.max_in_flite: unknown key 'max_in_flite' (did you mean 'max_in_flight'?)"
        in result.stderr
    )


def test_bad_value_and_missing_variable(tmp_path):
    config = write(
        tmp_path,
        "models:\n  a:\n    deployments:\n      - model: mock/echo\n        timeout: -3\n"
        "      - model: openai/x\n        api_key: ${GP_TEST_MISSING_VAR}\n",
    )
    result = run_check(config)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert any(
        line.startswith(
            f"{config}:7: models.a.deployments[1].api_key: environment variable "
            "GP_TEST_MISSING_VAR is not set"
        )
        for line in lines
    ), lines


def test_bad_policy_validator_type(tmp_path):
    config = write(tmp_path, "models:\n  a:\n    policy: mine\n    deployments:\n      - model: mock/echo\n")
    (tmp_path / "policies" / "mine.yaml").write_text(
        "name: mine\nvalidators:\n  - type: json\n  - type: regx\n    deny: ['x']\n"
    )
    result = run_check(config)
    assert result.returncode == 1
    policy = tmp_path / "policies" / "mine.yaml"
    assert (
        f"{policy}:4: validators[1].type: unknown validator 'regx' (did you mean 'regex'?)" in result.stderr
    )


def test_missing_policy_and_bad_mock(tmp_path):
    config = write(
        tmp_path,
        "models:\n  a:\n    policy: nowhere\n    deployments:\n      - model: mock/echo\n"
        "  b:\n    deployments:\n      - model: mock/broken-json\n        mock: {defect: mangled}\n",
    )
    result = run_check(config)
    assert result.returncode == 1
    assert "policy 'nowhere' is referenced but missing" in result.stderr
    assert "mangled" in result.stderr


@pytest.mark.parametrize("text", ["models: [1, 2", "- just\n- a list\n"])
def test_not_yaml_or_not_mapping(tmp_path, text):
    result = run_check(write(tmp_path, text))
    assert result.returncode == 1
    assert str(tmp_path / "config.yaml") + ":" in result.stderr
