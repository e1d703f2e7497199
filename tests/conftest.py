"""Shared fixtures: isolated environment, config builders, real servers on loopback."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.servers import ServerThread

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider key from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.endswith("_API_KEY") or name.startswith("GUARDPROXY_"):
            monkeypatch.delenv(name, raising=False)


ConfigFactory = Callable[..., Path]


@pytest.fixture
def make_config(tmp_path: Path) -> ConfigFactory:
    """Write a config.yaml (and policies) under tmp_path; returns its path."""

    def build(
        models: dict[str, Any],
        *,
        policies: dict[str, dict[str, Any]] | None = None,
        cache: dict[str, Any] | None = None,
        **sections: Any,
    ) -> Path:
        folder = tmp_path / "policies"
        folder.mkdir(exist_ok=True)
        for shipped in (REPO / "policies").glob("*.yaml"):
            if not (folder / shipped.name).exists():
                shutil.copy(shipped, folder / shipped.name)
        for name, policy in (policies or {}).items():
            (folder / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **policy}, sort_keys=False))
        config = {
            "models": models,
            "cache": cache or {"backend": "disk", "path": str(tmp_path / "cache")},
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05, "deadline": 20},
            "logging": {"audit_path": str(tmp_path / "audit.jsonl")},
            "policies_dir": str(folder),
            **sections,
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return build


@pytest.fixture
def start_proxy() -> Iterator[Callable[[Path], ServerThread]]:
    """Start the real guardproxy app on a loopback port; stopped at teardown."""
    from proxy.app import create_app

    started: list[ServerThread] = []

    def start(config: Path, **inject: Any) -> ServerThread:
        server = ServerThread(create_app(config, **inject)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def client_for() -> Callable[..., openai.OpenAI]:
    def make(server: ServerThread, key: str = "sk-test", **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30, **kw)

    return make


@pytest.fixture
def async_client_for() -> Callable[..., openai.AsyncOpenAI]:
    def make(server: ServerThread, key: str = "sk-test", **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30, **kw)

    return make
