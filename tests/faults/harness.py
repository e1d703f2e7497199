"""The fault-injection harness: the HTTP mock upstream and guardproxy, both real servers on loopback."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from proxy.mock.server import build_server, create_mock_app
from proxy.resilience import Resilience
from proxy.services import load_runtime
from proxy.settings import load_settings
from tests.helpers import metric_sum
from tests.servers import ServerThread, free_port

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_KEY = "sk-canaryupstream0123456789"  # the provider key; must never reach a client
LONG = "The quick brown fox jumps over the lazy dog while the proxy relays every word. " * 4
# A passthrough policy whose deny phrase makes the stream guard hold back its length in characters.
HOLD_PHRASE = "this exact sentence is long enough to hold back every short answer entirely"
RELAY_POLICY = {
    "stream": "passthrough",
    "validators": [{"type": "phrases", "deny": [HOLD_PHRASE]}],
    "on_fail": ["reject"],
}

MOCK_OPTIONS: dict[str, Any] = {
    "ok": {"behaviour": "echo"},
    "ok2": {"behaviour": "echo"},
    "slow": {"behaviour": "echo", "latency_ms": 4000},
    "slow-ok": {"behaviour": "echo", "latency_ms": 600},
    "slow-stream": {"behaviour": "static", "content": LONG, "stream_chunk_chars": 4, "chunk_delay_ms": 150},
    "ra1-then-ok": {
        "behaviour": "script",
        "script": [{"behaviour": "error", "status": 429, "retry_after": 1}, {"behaviour": "echo"}],
    },
    "ra3600": {"behaviour": "error", "status": 429, "retry_after": 3600},
    "ra3600b": {"behaviour": "error", "status": 429, "retry_after": 3600},
    "e500-then-ok": {
        "behaviour": "script",
        "script": [{"behaviour": "error", "status": 500}, {"behaviour": "echo"}],
    },
    "ctx400": {
        "behaviour": "error",
        "status": 400,
        "message": "This model's maximum context length is 8192 tokens, your messages resulted in 9000"
        f" tokens (key {UPSTREAM_KEY} at http://10.1.2.3:8000/v1).",
    },
    "bad400": {
        "behaviour": "error",
        "status": 400,
        "message": f"Unrecognized request argument supplied: frobnicate (key {UPSTREAM_KEY}, docs"
        " https://internal.example/v1/docs)",
    },
    "auth401": {"behaviour": "error", "status": 401},
    "auth403": {"behaviour": "error", "status": 403},
    "blackhole": {"behaviour": "timeout"},
    "blackhole2": {"behaviour": "timeout"},
    "blackhole3": {"behaviour": "timeout"},
    "stall": {"behaviour": "stall"},
    "cut-then-ok": {
        "behaviour": "script",
        "script": [{"behaviour": "echo", "stream_cut": True, "stream_chunk_chars": 2}, {"behaviour": "echo"}],
    },
    "cut-late": {"behaviour": "static", "content": LONG, "stream_chunk_chars": 8, "stream_cut": True},
    "html": {"behaviour": "malformed", "body": "html"},
    "truncated": {"behaviour": "malformed", "body": "truncated"},
    "wrong_content_type": {"behaviour": "malformed", "body": "wrong_content_type"},
    "inband": {"behaviour": "stream_error", "content": LONG, "message": "upstream exploded"},
    "down503": {"behaviour": "error", "status": 503},
    "slow503": {"behaviour": "error", "status": 503, "latency_ms": 300},
    "recovering": {
        "behaviour": "script",
        "script": [
            {"behaviour": "error", "status": 500},
            {"behaviour": "error", "status": 500},
            {"behaviour": "echo", "latency_ms": 800},
        ],
    },
    "limited429": {"behaviour": "error", "status": 429, "retry_after": 0.1},
}


class MockUpstream:
    """`guardproxy mock-server`'s app under uvicorn in a thread, with its stats endpoints."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.server = build_server(create_mock_app(options), "127.0.0.1", free_port())
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.http = httpx.Client(timeout=10)

    def start(self) -> MockUpstream:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "mock server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.config.port}"

    def stats(self) -> dict[str, dict[str, int]]:
        data: dict[str, dict[str, int]] = self.http.get(self.url + "/mock/stats").json()
        return data

    def calls(self, label: str | None = None) -> int:
        counts = self.stats()["calls"]
        return int(counts.get(label, 0)) if label else sum(counts.values())

    def disconnects(self, label: str) -> int:
        return int(self.stats()["disconnects"].get(label, 0))

    def wait_disconnects(self, label: str, count: int = 1, within: float = 3.0) -> float | None:
        """Seconds until the mock saw `count` aborted requests on `label`; None if it did not."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            if self.disconnects(label) >= count:
                return time.monotonic() - start
            time.sleep(0.02)
        return None

    def reset(self) -> None:
        self.http.post(self.url + "/mock/reset").raise_for_status()


class SleepRecorder:
    """The retry layer's sleep: records every pause, then really sleeps it."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(seconds)


def deployment(mock: MockUpstream, label: str, transport: str, timeout: float = 5.0) -> dict[str, Any]:
    """An `openai/<label>` deployment on the HTTP mock."""
    return {
        "model": f"openai/{label}",
        "api_base": mock.url + "/v1",
        "api_key": UPSTREAM_KEY,
        "transport": transport,
        "timeout": timeout,
    }


def write_config(
    folder: Path,
    models: dict[str, Any],
    *,
    retry: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    policies: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A config.yaml (shipped policies plus `policies`) under `folder`."""
    pdir = folder / "policies"
    pdir.mkdir(parents=True, exist_ok=True)
    for shipped in (REPO / "policies").glob("*.yaml"):
        shutil.copy(shipped, pdir / shipped.name)
    for name, policy in (policies or {}).items():
        (pdir / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **policy}, sort_keys=False))
    config = {
        "server": {"max_in_flight": 512, "shutdown_grace": 2, **(server or {})},
        "models": models,
        "retry": {
            "attempts": 3,
            "initial_backoff": 0.01,
            "max_backoff": 0.05,
            "deadline": 4,
            "budget_min": 100000,
            "cooldown_failures": 100000,
            **(retry or {}),
        },
        "cache": {"backend": "disk", "path": str(folder / "cache")},
        "logging": {"audit_path": str(folder / "audit.jsonl")},
        "policies_dir": str(pdir),
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class FaultProxy:
    """guardproxy on loopback with a recording retry sleep, plus request and metric helpers."""

    def __init__(self, config: Path) -> None:
        from proxy.app import create_app

        settings = load_settings(config)
        self.sleeps = SleepRecorder()
        resilience = Resilience(settings.retry, sleep=self.sleeps)
        self.server = ServerThread(create_app(load_runtime(settings), resilience=resilience)).start()
        self.url = self.server.url
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        self.http.close()
        self.server.stop()

    def chat(
        self,
        alias: str,
        content: str | None = None,
        *,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        """POST one chat completion (a unique prompt unless `content` is given); the body is read."""
        body = {"model": alias, "messages": [{"role": "user", "content": content or unique()}], **extra}
        if stream:
            body["stream"] = True
        return self.http.post("/v1/chat/completions", json=body, headers=headers or {})

    def metrics(self) -> str:
        return self.http.get("/metrics").text

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels`."""
        return metric_sum(self.metrics(), name, **labels)

    def settled(self, within: float = 5.0) -> bool:
        """True once no request is in flight (the in-flight gauge is back to 0)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.metric("guardproxy_in_flight") == 0:
                return True
            time.sleep(0.05)
        return False


def unique(prefix: str = "q") -> str:
    return f"{prefix} {uuid.uuid4().hex[:12]}"


@contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t:` ... `t[0]` is the elapsed seconds."""
    box: list[float] = []
    start = time.monotonic()
    try:
        yield box
    finally:
        box.append(time.monotonic() - start)


def assert_error(
    response: httpx.Response, status: int, type_: str, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error shape, with no provider key or URL in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == type_
    if code is not None:
        assert error["code"] == code
    assert "x-request-id" in response.headers
    assert UPSTREAM_KEY not in response.text and "canaryupstream" not in response.text
    assert "http://" not in error["message"] and "https://" not in error["message"]
    assert "Traceback" not in response.text
    return dict(error)


def sse_events(raw: str) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded (the `[DONE]` marker kept as a string)."""
    import json

    out: list[Any] = []
    for line in raw.splitlines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
