"""The compatibility suite: real client libraries against a real guardproxy on loopback.

guardproxy runs from the project's venv as its own process (`python -m proxy serve`), in front of
`guardproxy mock-server` (the direct transport, OpenAI wire over HTTP) and of the in-process `mock/...`
provider (the litellm transport). Every alias exists once per transport: `<transport>-<stem>`.
The clients run in this venv (.venv-compat), in .venv-instructor (instructor's pins) or in Node 22.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPAT = Path(__file__).resolve().parent
GUARDPROXY_PYTHON = os.environ.get("GUARDPROXY_PYTHON", str(REPO / ".venv" / "bin" / "python"))
INSTRUCTOR_PYTHON = os.environ.get("INSTRUCTOR_PYTHON", str(REPO / ".venv-instructor" / "bin" / "python"))
NODE = os.environ.get("COMPAT_NODE", str(COMPAT / "node" / "node_modules" / ".bin" / "node"))
TRANSPORTS = ("direct", "litellm")

# label -> mock options; served by mock-server (direct) and as `mock/<behaviour>` (litellm).
MOCKS: dict[str, dict[str, Any]] = {
    "echo": {"behaviour": "echo", "stream_chunk_chars": 4},
    "schema": {"behaviour": "schema", "seed": 7},
    "fence": {"behaviour": "broken-json", "defect": "fence"},
    "trailing": {"behaviour": "broken-json", "defect": "trailing_comma"},
    "missing": {"behaviour": "broken-json", "defect": "missing_required"},
    "person-broken": {"behaviour": "static", "content": "```json\n{'name': 'Ada', 'age': 36,}\n```"},
    "person-md": {"behaviour": "static", "content": 'Here it is:\n```json\n{"name": "Ada", "age": 36}\n```'},
    "e400": {"behaviour": "error", "status": 400},
    "e429": {"behaviour": "error", "status": 429},
}
# alias stem -> (mock label, policy)
ALIASES: dict[str, tuple[str, str]] = {
    "echo": ("echo", "default"),
    "pii": ("echo", "pii-redact"),
    "schema": ("schema", "default"),
    "fence": ("fence", "default"),
    "trailing": ("trailing", "default"),
    "reject": ("missing", "reject-only"),
    "person-broken": ("person-broken", "default"),
    "person-md": ("person-md", "default"),
    "e400": ("e400", "default"),
    "e429": ("e429", "default"),
}
POLICIES = {"reject-only": {"name": "reject-only", "validators": [], "on_fail": ["reject"]}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _deployment(label: str, transport: str, mock_url: str) -> dict[str, Any]:
    if transport == "litellm":
        options = dict(MOCKS[label])
        return {"model": f"mock/{options.pop('behaviour')}", "mock": options, "timeout": 20}
    return {
        "model": f"openai/{label}",
        "api_base": mock_url + "/v1",
        "api_key": "sk-mock",
        "transport": "direct",
        "timeout": 20,
    }


class _Process:
    """A child process serving HTTP on 127.0.0.1:port, ready once `probe` answers 200."""

    def __init__(self, args: list[str], port: int, probe: str, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("wb")
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + probe, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{args[2:4]} did not start: see {log}\n{log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass(frozen=True)
class Proxy:
    url: str  # http://127.0.0.1:PORT (clients add /v1)
    mock_url: str

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


@pytest.fixture(scope="session")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """guardproxy (serve) and the mock upstream (mock-server), each its own process, for the session."""
    folder = tmp_path_factory.mktemp("compat")
    mock_config = folder / "mock.yaml"
    mock_config.write_text(yaml.safe_dump(MOCKS, sort_keys=False))
    mock_port = _free_port()
    mock = _Process(
        [
            GUARDPROXY_PYTHON,
            "-m",
            "proxy",
            "mock-server",
            "--port",
            str(mock_port),
            "--config",
            str(mock_config),
        ],
        mock_port,
        "/v1/models",
        folder / "mock-server.log",
    )
    policies = folder / "policies"
    policies.mkdir()
    for shipped in (REPO / "policies").glob("*.yaml"):
        (policies / shipped.name).write_bytes(shipped.read_bytes())
    for name, spec in POLICIES.items():
        (policies / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    models = {
        f"{t}-{stem}": {"policy": policy, "deployments": [_deployment(label, t, mock.url)]}
        for t in TRANSPORTS
        for stem, (label, policy) in ALIASES.items()
    }
    config = {
        "models": models,
        "cache": {"backend": "none"},
        "retry": {"attempts": 1, "initial_backoff": 0.01, "max_backoff": 0.05, "deadline": 30},
        "logging": {"audit_path": str(folder / "audit.jsonl")},
        "policies_dir": str(policies),
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = _free_port()
    try:
        server = _Process(
            [
                GUARDPROXY_PYTHON,
                "-m",
                "proxy",
                "serve",
                "--config",
                str(folder / "config.yaml"),
                "--port",
                str(port),
            ],
            port,
            "/health",
            folder / "guardproxy.log",
        )
    except BaseException:
        mock.stop()
        raise
    yield Proxy(server.url, mock.url)
    server.stop()
    mock.stop()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def model(transport: str) -> Any:
    """model("schema") -> the alias of that stem on this test's transport."""
    return lambda stem: f"{transport}-{stem}"


@pytest.fixture(autouse=True)
def tiktoken_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokenizer files come from litellm's bundled copies: no download at test time."""
    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.origin:
        folder = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def run_json(args: list[str], *, timeout: float = 60) -> Any:
    """Run a client script; it prints one JSON document on stdout (stderr is shown on failure)."""
    done = subprocess.run(args, cwd=COMPAT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[1]} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def pytest_configure(config: pytest.Config) -> None:
    """Warnings stay errors for our code (pyproject), but the clients under test are third-party code:
    their own event-loop and socket hygiene (unclosed sockets, generators after loop shutdown in the
    Agents SDK and httpx2) is not what this suite checks; what they parse is."""
    config.addinivalue_line("filterwarnings", "ignore::ResourceWarning")
    config.addinivalue_line("filterwarnings", "ignore::pytest.PytestUnraisableExceptionWarning")
