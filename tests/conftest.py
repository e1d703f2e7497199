"""Shared fixtures: isolated environment, config builders, real servers on loopback, a redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.servers import ServerThread, free_port

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
REPO = Path(__file__).resolve().parent.parent
# Read at import: the suite's autouse `clean_environ` removes GUARDPROXY_* variables inside tests.


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
def upstream(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    """The HTTP mock upstream in a thread; behaviours from the test module's `MOCK` (default: `echo`)."""
    from proxy.mock.server import create_mock_app

    server = ServerThread(create_mock_app(getattr(request.module, "MOCK", {"echo": None}))).start()
    yield server
    server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """One keep-alive client per test: a new connection per request costs ~50 ms on this machine."""
    with httpx.Client(timeout=30) as client:
        yield client


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


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server child process with no persistence, bound to 127.0.0.1:port."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        args += ["--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def kill(self) -> None:
        """SIGKILL the server (a crash, not a shutdown) and wait for it to go."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server accepts connections but answers nothing (a stalled Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The redis-server executable; a missing one fails the test (`make test` installs it)."""
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server not found: run `make test` or `apt-get install -y redis-server`")
    return found


@pytest.fixture
def redis_server(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server per test, stopped (SIGCONT first, in case it was paused) at teardown."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(redis_binary, free_port(), workdir).start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.resume()
        server.kill()
