"""A buffered stream that committed before its answer (keep-alives, outcome `streaming`) reports the
verdict in its last chunk: the violations its ladder found, as a passthrough stream does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ServerThread

LATE = {"latency_ms": 500}  # past keepalive_seconds: the stream commits before the verdict
MOCK: dict[str, Any] = {
    "fenced": {"behaviour": "broken-json", "defect": "fence", **LATE},
    "flaggable": {"behaviour": "static", "content": "Our kettles are made by Globex Corporation.", **LATE},
    "plain": {"behaviour": "static", "content": "Nothing to see here.", **LATE},
}
POLICIES = {
    "json-repair": {"stream": "buffer", "validators": [{"type": "json"}], "on_fail": ["repair", "reject"]},
    "flag-brand": {
        "stream": "buffer",
        "validators": [{"type": "phrases", "deny": ["Globex"], "on_fail": "flag"}],
    },
}


@pytest.fixture
def proxy(
    upstream: ServerThread, make_config: Callable[..., Path], start_proxy: Callable[[Path], ServerThread]
) -> ServerThread:
    def dep(label: str) -> dict[str, Any]:
        return {"model": f"openai/{label}", "api_base": upstream.url + "/v1", "api_key": "sk-mock"}

    models = {
        "fenced": {"policy": "json-repair", "deployments": [dep("fenced")]},
        "flaggable": {"policy": "flag-brand", "deployments": [dep("flaggable")]},
        "plain": {"policy": "flag-brand", "deployments": [dep("plain")]},
    }
    config = make_config(
        models, policies=POLICIES, cache={"backend": "none"}, server={"keepalive_seconds": 0.1}
    )
    return start_proxy(config)


def _verdict(http: httpx.Client, proxy: ServerThread, model: str) -> dict[str, Any]:
    response = http.post(
        proxy.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert response.status_code == 200 and response.headers["x-guardproxy-outcome"] == "streaming"
    assert response.text.startswith(": keep-alive") and response.text.endswith("data: [DONE]\n\n")
    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    [verdict] = [c["guardproxy"] for c in chunks if "guardproxy" in c]
    return verdict  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("model", "outcome", "validator"), [("fenced", "repaired", "json"), ("flaggable", "flagged", "phrases")]
)
def test_committed_verdict_lists_the_violations_found(
    proxy: ServerThread, http: httpx.Client, model: str, outcome: str, validator: str
) -> None:
    verdict = _verdict(http, proxy, model)
    assert verdict["outcome"] == outcome
    assert [v["validator"] for v in verdict["violations"]] == [validator]
    assert all(v["message"] for v in verdict["violations"])


def test_committed_verdict_of_a_clean_answer_lists_none(proxy: ServerThread, http: httpx.Client) -> None:
    verdict = _verdict(http, proxy, "plain")
    assert verdict["outcome"] == "pass" and verdict["violations"] == []
