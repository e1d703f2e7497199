"""One chain walk (proxy.chain) for every route: the same fault script through buffered chat, a passthrough
stream and embeddings makes the same attempts, leaves the same cooldown state and ends the same way."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ServerThread

E500 = {"behaviour": "error", "status": 500}
# Each path has its own labels: the mock counts calls per label, so the scripts never interleave.
PATHS = ("chat", "stream", "emb")
MOCK: dict[str, Any] = {
    **{f"flaky-{p}": {"behaviour": "script", "script": [E500, E500, {"behaviour": "echo"}]} for p in PATHS},
    **{f"dead-{p}": {"behaviour": "error", "status": 503} for p in PATHS},
    **{f"ok-{p}": {"behaviour": "echo"} for p in PATHS},
}
RELAY = {"stream": "passthrough", "validators": [], "on_fail": ["reject"]}


def _dep(upstream: ServerThread, label: str) -> dict[str, Any]:
    return {"model": f"openai/{label}", "api_base": upstream.url + "/v1", "api_key": "sk-mock"}


@pytest.fixture
def proxy(upstream: ServerThread, make_config: Callable[..., Path], start_proxy: Any) -> ServerThread:
    models = {
        f"{script}-{path}": {
            "deployments": [_dep(upstream, f"{label}-{path}") for label in labels],
            **({"policy": "relay"} if path == "stream" else {}),
        }
        for path in PATHS
        for script, labels in (("flaky", ["flaky"]), ("dead", ["dead"]), ("fallback", ["dead", "ok"]))
    }
    retry = {
        "attempts": 3,
        "initial_backoff": 0.01,
        "max_backoff": 0.02,
        "deadline": 20,
        "budget_min": 1000,
        "cooldown_failures": 3,
        "cooldown_seconds": 60,
    }
    config = make_config(models, policies={"relay": RELAY}, cache={"backend": "none"}, retry=retry)
    return start_proxy(config)


def _ask(http: httpx.Client, proxy: ServerThread, path: str, alias: str) -> httpx.Response:
    model = f"{alias}-{path}"
    if path == "emb":
        return http.post(proxy.url + "/v1/embeddings", json={"model": model, "input": "hello"})
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    if path == "stream":
        body["stream"] = True
    return http.post(proxy.url + "/v1/chat/completions", json=body)


def _cooling(http: httpx.Client, proxy: ServerThread) -> dict[str, float]:
    text = http.get(proxy.url + "/metrics").text
    return {
        k: float(v)
        for k, v in re.findall(r'guardproxy_deployment_cooldown\{deployment="([^"]+)"\} (\S+)', text)
    }


def _key(path: str, alias: str, index: int) -> str:
    return f"{alias}-{path}#{'emb' if path == 'emb' else ''}{index}"


def _calls(http: httpx.Client, proxy: ServerThread, label: str) -> dict[str, float]:
    text = http.get(proxy.url + "/metrics").text
    pattern = rf'guardproxy_upstream_calls_total\{{deployment="openai/{label}",result="([^"]+)"\}} (\S+)'
    return {k: float(v) for k, v in re.findall(pattern, text)}


@pytest.mark.parametrize("path", PATHS)
def test_retried_until_it_answers(proxy: ServerThread, http: httpx.Client, path: str) -> None:
    """500, 500, then OK: three attempts on one deployment, no cooldown left behind."""
    response = _ask(http, proxy, path, "flaky")
    assert response.status_code == 200, response.text
    assert response.headers["x-guardproxy-attempts"] == "3"
    calls = _calls(http, proxy, f"flaky-{path}")
    assert calls.pop("ok") == 1.0 and sum(calls.values()) == 2.0, calls  # 2 failed attempts, 1 answer
    assert _cooling(http, proxy).get(_key(path, "flaky", 0), 0.0) == 0.0


@pytest.mark.parametrize("path", PATHS)
def test_a_dead_deployment_cools_down(proxy: ServerThread, http: httpx.Client, path: str) -> None:
    """Every call fails: the retries count one cooldown failure each; once cooled, nothing is tried."""
    first = _ask(http, proxy, path, "dead")
    assert first.status_code == 502 and first.headers["x-guardproxy-attempts"] == "3"
    assert _cooling(http, proxy)[_key(path, "dead", 0)] == 1.0
    second = _ask(http, proxy, path, "dead")
    assert second.status_code == 502 and second.headers["x-guardproxy-attempts"] == "0"
    assert second.json()["error"]["code"] == "deployments_cooling_down"


@pytest.mark.parametrize("path", PATHS)
def test_fallback_past_a_dead_deployment(proxy: ServerThread, http: httpx.Client, path: str) -> None:
    first = _ask(http, proxy, path, "fallback")
    assert first.status_code == 200, first.text
    assert first.headers["x-guardproxy-attempts"] == "4"
    assert first.headers["x-guardproxy-outcome"] in ("fallback", "streaming")
    assert first.headers["x-guardproxy-deployment"] == f"openai/ok-{path}"
    second = _ask(http, proxy, path, "fallback")  # the dead one cools: skipped, one attempt
    assert second.status_code == 200 and second.headers["x-guardproxy-attempts"] == "1"
    assert _cooling(http, proxy)[_key(path, "fallback", 0)] == 1.0
