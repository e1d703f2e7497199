"""deploy/: the Kubernetes manifests validate offline against the Kubernetes schemas, and every file
agrees with the config it ships (ports, probe paths, env names, mounted paths, shutdown timings)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from proxy.services import load_runtime
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
_ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(:-[^}]*)?\}")


def _docs() -> list[dict[str, Any]]:
    return [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _config() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "config.yaml").read_text()))


def _container() -> dict[str, Any]:
    return dict(_one("Deployment", "guardproxy")["spec"]["template"]["spec"]["containers"][0])


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def _entrypoint_config() -> Path:
    line = next(x for x in _dockerfile().splitlines() if x.startswith("ENTRYPOINT"))
    argv = yaml.safe_load(line.removeprefix("ENTRYPOINT").strip())
    assert argv[:2] == ["guardproxy", "serve"]
    return Path(argv[argv.index("--config") + 1])


@pytest.mark.parametrize("doc", _docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_validates_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_ports_agree() -> None:
    port = _config()["server"]["port"]
    container = _container()
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named["http"] == port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert named.get(container[probe]["httpGet"]["port"], container[probe]["httpGet"]["port"]) == port
    service = _one("Service", "guardproxy")["spec"]
    assert service["ports"][0]["targetPort"] in ("http", port)
    assert f"EXPOSE {port}" in _dockerfile()
    assert f"127.0.0.1:{port}/health/live" in _dockerfile()
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    for i in (1, 2, 3):
        assert compose["services"]["haproxy"]["environment"][f"REPLICA{i}"] == f"guardproxy{i}:{port}"
    redis = _one("Service", "guardproxy-redis")["spec"]["ports"][0]["port"]
    redis_url = next(e["value"] for e in container["env"] if e["name"] == "REDIS_URL")
    assert redis_url == f"redis://guardproxy-redis:{redis}/0"


def test_probe_paths_are_the_health_routes() -> None:
    container = _container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert "http-check send meth GET uri /health/ready " in (DEPLOY / "haproxy.cfg").read_text()
    healthcheck = _dockerfile().split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert "/health/live" in healthcheck


def test_every_variable_the_config_needs_is_in_every_environment() -> None:
    text = (DEPLOY / "config.yaml").read_text()
    needed = {m.group(1) for m in _ENV_REF.finditer(text) if m.group(2) is None}
    mentioned = {m.group(1) for m in _ENV_REF.finditer(text)}
    assert needed == {"TEAM_A_KEY", "OPENAI_API_KEY", "GUARDPROXY_CACHE_SECRET"}
    env = {e["name"]: e for e in _container()["env"]}
    assert mentioned <= set(env)
    secret = _one("Secret", "guardproxy-secrets")
    for name in needed:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "guardproxy-secrets" and ref["key"] in secret["stringData"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    for i in (1, 2, 3):
        assert mentioned <= set(compose["services"][f"guardproxy{i}"]["environment"])


def test_mounted_paths_agree_with_the_entrypoint_and_the_config() -> None:
    config_path = _entrypoint_config()
    container = _container()
    spec = _one("Deployment", "guardproxy")["spec"]["template"]["spec"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert Path(mount["mountPath"]) == config_path.parent and mount["readOnly"]
    volume = next(v for v in spec["volumes"] if v["name"] == "config")
    files = {
        i["path"]: (s["configMap"]["name"], i["key"])
        for s in volume["projected"]["sources"]
        for i in s["configMap"]["items"]
    }
    assert files[config_path.name] == ("guardproxy-config", "config.yaml")
    config = _config()
    policies = {config["default_policy"]} | {a["policy"] for a in config["models"].values() if "policy" in a}
    for name in policies:
        assert files[f"{config['policies_dir']}/{name}.yaml"] == ("guardproxy-policies", f"{name}.yaml")
    audit = Path(config["logging"]["audit_path"])
    assert any(
        audit.parent == Path(m["mountPath"]) for m in container["volumeMounts"] if not m.get("readOnly")
    )
    assert f"--home-dir {audit.parent}" in _dockerfile()  # writable by the non-root user in Docker too
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    volumes = compose["services"]["guardproxy1"]["volumes"]
    assert f"./config.yaml:{config_path}:ro" in volumes
    assert f"../policies:{config_path.parent / config['policies_dir']}:ro" in volumes


def test_configmap_carries_the_deploy_config_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's files, laid out as the pod sees them, load with guardproxy's own loader."""
    assert (
        _one("ConfigMap", "guardproxy-config")["data"]["config.yaml"] == (DEPLOY / "config.yaml").read_text()
    )
    (tmp_path / "config.yaml").write_text(_one("ConfigMap", "guardproxy-config")["data"]["config.yaml"])
    (tmp_path / "policies").mkdir()
    for name, text in _one("ConfigMap", "guardproxy-policies")["data"].items():
        (tmp_path / "policies" / name).write_text(text)
    for name in ("TEAM_A_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, "sk-placeholder")
    monkeypatch.setenv("GUARDPROXY_CACHE_SECRET", "x" * 32)
    runtime = load_runtime(tmp_path / "config.yaml")
    assert runtime.settings.cache.backend == "redis"  # replicas share cache, limits and health


def test_shutdown_timings_fit_the_grace_periods() -> None:
    server = _config()["server"]
    drain = server["drain_delay"] + server["shutdown_grace"]
    spec = _one("Deployment", "guardproxy")["spec"]["template"]["spec"]
    pre_stop = _container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    assert int(compose["services"]["guardproxy1"]["stop_grace_period"].rstrip("s")) > drain


def test_dockerfile_runs_as_non_root_without_dev_extras() -> None:
    text = _dockerfile()
    assert text.count("FROM ") >= 2  # multi-stage
    assert re.search(r"^USER (?!root|0\b)", text, re.M)
    installs = [x for x in text.splitlines() if "pip install" in x]
    assert installs and not any("[dev]" in line or "-e " in line for line in installs)
