"""Hot reload against hostile and half-written files: the watcher never dies, YAML aliases are bounded,
`${VAR}` values stay plain strings, and a file is applied only once it is whole."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.yamlfile import ConfigError, load_yaml

REPO = Path(__file__).resolve().parents[2]
ADMIN, USER = "sk-reload-admin-0001", "sk-reload-user-0002"
KEYS = [{"name": "ops", "key": ADMIN, "admin": True}, {"name": "app", "key": USER}]
MODELS = {"m": {"deployments": [{"model": "mock/echo"}]}}

ALIAS_LOOP = "models:\n  m:\n    deployments:\n      - &dep {model: mock/echo, params: {self: *dep}}\n"
LAUGHS = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" if i else 'l0: &l0 ["lol", "lol", "lol"]\n'
    for i in range(10)
)  # 3 * 9**9 ≈ 1.2 billion strings once expanded; a few hundred bytes on disk
BOMB = LAUGHS + "models:\n  m:\n    deployments:\n      - model: mock/echo\n        params: {x: *l9}\n"


def wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def status(proxy, key: str | None) -> int:
    headers = {"cache-control": "no-store"} | ({"authorization": f"Bearer {key}"} if key else {})
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=headers, timeout=10).status_code


def reload_failures(proxy) -> float:
    text = httpx.get(proxy.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10).text
    match = re.search(r"^guardproxy_config_reload_failures_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else -1.0


def config_text(config: Path, **changes: object) -> str:
    data = yaml.safe_load(config.read_text())
    data.update(changes)
    return yaml.safe_dump(data, sort_keys=False)


def test_alias_loop_and_bomb_are_refused_and_the_next_good_edit_revokes_a_key(make_config, start_proxy):
    config = make_config(MODELS, auth={"keys": KEYS})
    proxy = start_proxy(config, reload_interval=0.1)
    good = config.read_text()
    assert status(proxy, USER) == 200 and reload_failures(proxy) == 0

    config.write_text(good + "x_" + ALIAS_LOOP.replace("models:", "loop:", 1))  # RecursionError before
    assert wait_for(lambda: reload_failures(proxy) >= 1), "the alias loop was not counted as a failure"
    config.write_text(BOMB + "auth:\n  keys: []\n")  # would open the proxy, if it ever expanded
    assert wait_for(lambda: reload_failures(proxy) >= 2), "the alias bomb was not counted as a failure"
    started = time.monotonic()
    assert httpx.get(proxy.url + "/health", timeout=10).status_code == 200
    assert time.monotonic() - started < 2.0  # loose: the bomb did not stall the event loop
    assert status(proxy, USER) == 200 and status(proxy, None) == 401, "the previous set must keep serving"

    revoked = yaml.safe_load(good)
    revoked["auth"]["keys"] = [KEYS[0]]
    config.write_text(yaml.safe_dump(revoked, sort_keys=False))
    assert wait_for(lambda: status(proxy, USER) == 401), "the reload task died: a revoked key still works"
    assert status(proxy, ADMIN) == 200
    assert reload_failures(proxy) == 2


def test_alias_loop_in_a_policy_file_is_refused(make_config, start_proxy, tmp_path):
    config = make_config(MODELS, auth={"keys": KEYS})
    proxy = start_proxy(config, reload_interval=0.1)
    (tmp_path / "policies" / "default.yaml").write_text(
        "name: default\nvalidators: &v\n  - {type: json, extra: *v}\n"
    )
    assert wait_for(lambda: reload_failures(proxy) >= 1)
    config.write_text(config_text(config, auth={"keys": [KEYS[0]]}))
    (tmp_path / "policies" / "default.yaml").write_text("name: default\nvalidators: []\n")
    assert wait_for(lambda: status(proxy, USER) == 401), "a good edit after a bad policy was not applied"


def test_a_file_being_written_is_not_applied_half_written(make_config, start_proxy):
    config = make_config(MODELS, auth={"keys": KEYS})
    proxy = start_proxy(config, reload_interval=0.4)
    final = yaml.safe_load(config.read_text())
    final["models"]["m2"] = MODELS["m"]
    auth = yaml.safe_dump({"auth": final.pop("auth")}, sort_keys=False)
    head = yaml.safe_dump(final, sort_keys=False)  # valid on its own, and without `auth`: no keys at all
    statuses: list[int] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            statuses.append(status(proxy, None))
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        with config.open("w") as fh:  # a slow writer: the file changes at every poll for ~2 s
            fh.write(head)
            fh.flush()
            for i in range(40):
                time.sleep(0.05)
                fh.write(f"# still writing {i}\n")
                fh.flush()
            fh.write(auth)
        assert wait_for(lambda: "m2" in models(proxy)), "the finished file was not applied"
    finally:
        done.set()
        prober.join()
    assert statuses and set(statuses) == {401}, "a half-written config (no auth yet) was served"


def models(proxy) -> list[str]:
    r = httpx.get(proxy.url + "/v1/models", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    return [m["id"] for m in r.json()["data"]]


def test_variables_are_plain_strings_in_a_served_config(make_config, start_proxy, monkeypatch):
    monkeypatch.setenv("GP_HASH_KEY", "s3cret #tail")
    monkeypatch.setenv("GP_DIGIT_KEY", "000123")
    keys = [{"name": "hash", "key": "${GP_HASH_KEY}"}, {"name": "digits", "key": "${GP_DIGIT_KEY}"}]
    proxy = start_proxy(make_config(MODELS, auth={"keys": keys}))
    assert status(proxy, "s3cret #tail") == 200  # before: the key was cut to `s3cret`
    assert status(proxy, "s3cret") == 401
    assert status(proxy, "000123") == 200  # before: read as the octal integer 83, refused at load


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40))
def test_a_variable_is_inserted_verbatim(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("env") / "c.yaml"
    path.write_text("plain: ${V}\ninside: pre-${V}\nquoted: '${V}'\n")
    data = load_yaml(path, environ={"V": value}).data
    assert data == {"plain": value, "inside": "pre-" + value, "quoted": value}


@pytest.mark.parametrize("text", [ALIAS_LOOP, BOMB, "a: " + "[" * 400 + "]" * 400 + "\n"])
def test_the_loader_refuses_loops_bombs_and_depth_quickly(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert time.monotonic() - started < 1.0  # loose bound on an attack: linear in the file, not the bomb
    assert re.search(r"loop|alias bomb|deeper than", str(info.value)), str(info.value)


def guardproxy(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "proxy", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )
    return result, time.monotonic() - started


def test_check_and_serve_refuse_a_bomb(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(BOMB)
    for command in (["check", "--config", str(config)], ["serve", "--config", str(config), "--port", "0"]):
        result, took = guardproxy(*command, cwd=REPO)
        assert result.returncode == 1, (command, result.stderr)
        assert f"{config}:1: (aliases):" in result.stderr and "alias bomb" in result.stderr
        assert took < 20  # loose: a process start; the bomb itself is refused in milliseconds


def test_policy_test_refuses_a_bomb_in_the_policy_or_the_cases(tmp_path):
    policy = tmp_path / "p.yaml"
    cases = tmp_path / "cases.yaml"
    policy.write_text(LAUGHS + "name: p\nvalidators: [{type: json}]\ndescription: *l9\n")
    cases.write_text("- {name: c, output: '{}', expect: pass}\n")
    result, took = guardproxy("policy", "test", str(policy), str(cases), cwd=tmp_path)
    assert result.returncode == 1 and "alias bomb" in result.stderr, result.stderr
    assert took < 20
    policy.write_text("name: p\nvalidators: [{type: json}]\n")
    nested = "".join("    " + line + "\n" for line in LAUGHS.splitlines())
    cases.write_text("- name: c\n  output: '{}'\n  expect: pass\n  laughs:\n" + nested)
    result, took = guardproxy("policy", "test", str(policy), str(cases), cwd=tmp_path)
    assert result.returncode == 1 and "alias bomb" in result.stderr, result.stderr
    assert took < 20
