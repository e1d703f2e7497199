"""Issue 14 item 3b: upstream bodies are bounded by `limits.max_upstream_bytes` on both transports.

guardproxy runs as a real `guardproxy serve` subprocess, so its peak RSS (VmHWM) is its own; the
attacker upstream runs on loopback in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.hostile.upstream_attacker import Attacker, MiB
from tests.servers import free_port

LIMIT = 16 * MiB  # the default of limits.max_upstream_bytes: the config below does not set it
OVERHEAD = 48 * MiB  # what a request may add on top of the limit (buffers, parsed objects, allocator)
# (attack, client stream?) — each answers the non-stream or stream request it was sent
CASES = [
    ("huge", False),  # a 1 GB JSON body
    ("sse-endless", False),  # an endless event stream sent to a non-stream request
    ("bomb", False),  # 2 MB of gzip inflating to ~2 GB
    ("long-line", True),  # one SSE line that never ends
    ("sse-endless", True),  # a stream whose assembled output never ends
]


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


class ServedProxy:
    """`guardproxy serve` as a child process on a free loopback port."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        exe = Path(sys.executable).with_name("guardproxy")
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--config", str(config), "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        end = time.monotonic() + 90
        while True:
            try:
                if self.http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None and time.monotonic() < end, "guardproxy did not start"
            time.sleep(0.1)

    def peak(self) -> int:
        return _vm(self.proc.pid, "VmHWM")

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="module")
def attacker() -> Iterator[Attacker]:
    server = Attacker().start()
    yield server
    server.stop()


def _config(folder: Path, attacker: Attacker, transport: str) -> Path:
    def dep(name: str) -> dict[str, Any]:
        return {
            "model": f"openai/{name}",
            "api_base": attacker.base,
            "api_key": "sk-attacker",
            "transport": transport,
            "timeout": 30,
        }

    models: dict[str, Any] = {"ok": {"deployments": [dep("ok")]}}
    for attack, _ in CASES:
        models[attack] = {"deployments": [dep(attack), dep("ok")]}
        models[f"{attack}-only"] = {"deployments": [dep(attack)]}
    config = {
        "server": {"port": 0},
        "models": models,
        "retry": {"attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.02, "deadline": 30},
        "cache": {"backend": "none"},
        "logging": {"audit_path": None},
        "policies_dir": str(Path(__file__).resolve().parents[2] / "policies"),
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module", params=["direct", "litellm"])
def served(
    request: pytest.FixtureRequest, attacker: Attacker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServedProxy, int]]:
    """The proxy for one transport, and its peak RSS after a normal answer (the baseline)."""
    proxy = ServedProxy(_config(tmp_path_factory.mktemp(request.param), attacker, request.param))
    for stream in (False, True):
        assert _chat(proxy, "ok", stream).status_code == 200
    yield proxy, proxy.peak()
    proxy.stop()


def _chat(proxy: ServedProxy, alias: str, stream: bool) -> httpx.Response:
    body = {"model": alias, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return proxy.http.post("/v1/chat/completions", json=body)


def _text(response: httpx.Response, stream: bool) -> str:
    if not stream:
        return str(response.json()["choices"][0]["message"]["content"])
    parts = []
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            for choice in httpx.Response(200, content=line[6:]).json().get("choices") or ():
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


@pytest.mark.parametrize(("attack", "stream"), CASES, ids=[f"{a}-{'sse' if s else 'json'}" for a, s in CASES])
def test_oversized_answer_falls_back_within_memory(
    served: tuple[ServedProxy, int], attacker: Attacker, attack: str, stream: bool
) -> None:
    proxy, baseline = served
    response = _chat(proxy, attack, stream)
    assert response.status_code == 200, response.text
    assert _text(response, stream) == "fallback answer"
    assert response.headers["x-guardproxy-outcome"] in ("fallback", "streaming")
    assert attacker.calls.get(attack, 0) >= 1
    growth = proxy.peak() - baseline
    print(f"\n{attack} stream={stream}: peak RSS {proxy.peak() / MiB:.0f} MiB (+{growth / MiB:.1f} MiB)")
    assert growth < LIMIT + OVERHEAD


@pytest.mark.parametrize(("attack", "stream"), CASES[:3], ids=[a for a, _ in CASES[:3]])
def test_oversized_answer_alone_is_502(served: tuple[ServedProxy, int], attack: str, stream: bool) -> None:
    proxy, baseline = served
    response = _chat(proxy, f"{attack}-only", stream)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "upstream_error"
    assert proxy.peak() - baseline < LIMIT + OVERHEAD
