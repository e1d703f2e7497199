"""Accounting when the answer ends (proxy.answer): token metrics, tpm spend and the access-log line are
written after the last byte, with what the answer really cost and how it really ended."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.access_log import ACCESS_LOGGER
from tests.servers import ServerThread

TEXT = "Please repeat this sentence back to me word for word, it is long on purpose. " * 5
FORBIDDEN = "This answer is FORBIDDEN by the policy. " * 10
MOCK: dict[str, Any] = {
    "echo": {"behaviour": "echo", "stream_chunk_chars": 40},
    "forbidden": {"behaviour": "static", "content": FORBIDDEN},
    "forbidden-slow": {"behaviour": "static", "content": FORBIDDEN, "latency_ms": 700},
}
KEYS = [
    {"name": "thrifty", "key": "sk-acct-thrifty-1", "tpm": 300},
    {"name": "meter", "key": "sk-acct-meter-001"},
    {"name": "ops", "key": "sk-acct-ops-0001", "admin": True},  # reads /metrics
]
POLICIES = {
    "relay": {"stream": "passthrough", "validators": [], "on_fail": ["reject"]},
    "no-forbidden": {"validators": [{"type": "regex", "deny": ["(?i)forbidden"]}], "on_fail": ["reject"]},
}


@pytest.fixture
def proxy(upstream: ServerThread, make_config: Callable[..., Path], start_proxy: Any) -> ServerThread:
    def dep(label: str) -> dict[str, Any]:
        return {"model": f"openai/{label}", "api_base": upstream.url + "/v1", "api_key": "sk-mock"}

    models = {
        "buffered": {"deployments": [dep("echo")]},
        "relayed": {"policy": "relay", "deployments": [dep("echo")]},
        "strict": {"policy": "no-forbidden", "deployments": [dep("forbidden")]},
        "open": {"deployments": [dep("forbidden")]},
        "strict-slow": {"policy": "no-forbidden", "deployments": [dep("forbidden-slow")]},
    }
    config = make_config(
        models,
        policies=POLICIES,
        cache={"backend": "none"},
        auth={"keys": [{**k, "models": ["*"]} for k in KEYS]},
        server={"keepalive_seconds": 0.2},
    )
    return start_proxy(config)


def _chat(http: httpx.Client, proxy: ServerThread, key: str, model: str, **body: Any) -> httpx.Response:
    return http.post(
        proxy.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": TEXT}], **body},
        headers={"authorization": f"Bearer {key}"},
    )


def _responses(http: httpx.Client, proxy: ServerThread, key: str, model: str, **body: Any) -> httpx.Response:
    return http.post(
        proxy.url + "/v1/responses",
        json={"model": model, "input": TEXT, **body},
        headers={"authorization": f"Bearer {key}"},
    )


ROUTES = {"chat": _chat, "responses": _responses}


def _access_line(caplog: pytest.LogCaptureFixture, path: str) -> dict[str, Any]:
    """The one access-log line of `path`, waiting for it: it is written after the answer's last byte."""
    deadline = time.monotonic() + 5
    while True:
        lines: list[dict[str, Any]] = [
            r.fields  # type: ignore[attr-defined]
            for r in caplog.records
            if r.name == ACCESS_LOGGER and r.fields["path"] == path  # type: ignore[attr-defined]
        ]
        if lines or time.monotonic() > deadline:
            [line] = lines
            return line
        time.sleep(0.02)


def _usage_of_stream(text: str) -> int:
    usages = [json.loads(line[6:]).get("usage") for line in text.splitlines() if line.startswith("data: {")]
    return sum(int(u["total_tokens"]) for u in usages if u)


@pytest.mark.parametrize("route", ["chat", "responses"])
@pytest.mark.parametrize("model", ["relayed", "buffered"])
def test_tpm_holds_for_streams(proxy: ServerThread, http: httpx.Client, model: str, route: str) -> None:
    """A `tpm: 300` key: once streamed answers have spent it, the next streamed request is refused."""
    send = ROUTES[route]
    statuses = [send(http, proxy, "sk-acct-thrifty-1", model, stream=True).status_code for _ in range(10)]
    passed = statuses.count(200)
    assert 1 <= passed <= 3 and statuses.count(429) == 10 - passed, statuses
    assert statuses[passed:] == [429] * (10 - passed)  # refused from the moment the budget was spent


def test_buffered_stream_failing_after_keepalive_logs_its_failure(
    proxy: ServerThread, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guardproxy")
    response = _chat(http, proxy, "sk-acct-meter-001", "strict-slow", stream=True)
    assert response.status_code == 200 and response.headers["x-guardproxy-outcome"] == "streaming"
    assert response.text.startswith(": keep-alive") and '"output_validation_failed"' in response.text
    [line] = [r.fields for r in caplog.records if r.name == ACCESS_LOGGER]  # type: ignore[attr-defined]
    assert line["status"] == 422 and line["outcome"] == "rejected"
    assert line["attempts"] == 1 and line["tokens"] > 0
    assert line["latency_ms"] >= 700  # the whole answer, not the time to the committed headers


def test_responses_stream_is_logged_after_its_end_with_its_real_status(
    proxy: ServerThread, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A /v1/responses stream committed before its verdict, then refused: logged 422 once it has ended."""
    caplog.set_level(logging.INFO, logger="guardproxy")
    response = _responses(http, proxy, "sk-acct-meter-001", "strict-slow", stream=True)
    assert response.status_code == 200 and "event: response.failed" in response.text
    line = _access_line(caplog, "/v1/responses")
    assert line["status"] == 422 and line["outcome"] == "rejected" and line["alias"] == "strict-slow"
    assert line["attempts"] == 1 and line["tokens"] > 0
    assert line["latency_ms"] >= 700  # the whole answer, not the time to the committed headers
    metrics = http.get(proxy.url + "/metrics", headers={"authorization": "Bearer sk-acct-ops-0001"}).text
    labels = 'alias="strict-slow",outcome="rejected",route="responses",status="422"'
    assert f"guardproxy_requests_total{{{labels}}} 1.0" in metrics


def test_tokens_total_is_the_upstream_usage(proxy: ServerThread, http: httpx.Client) -> None:
    """Non-stream, passthrough stream, buffered stream and a 422: the metric adds up what upstream said."""
    key = "sk-acct-meter-001"
    plain = _chat(http, proxy, key, "buffered")
    relayed = _chat(http, proxy, key, "relayed", stream=True, stream_options={"include_usage": True})
    buffered = _chat(http, proxy, key, "buffered", stream=True, stream_options={"include_usage": True})
    refused = _chat(http, proxy, key, "strict")
    same_answer = _chat(http, proxy, key, "open")  # what the refused answer cost, answered
    assert refused.status_code == 422 and same_answer.status_code == 200
    spent = [
        plain.json()["usage"]["total_tokens"],
        _usage_of_stream(relayed.text),
        _usage_of_stream(buffered.text),
        same_answer.json()["usage"]["total_tokens"],  # the 422's one attempt
        same_answer.json()["usage"]["total_tokens"],
    ]
    assert all(spent)
    assert int(refused.headers["x-guardproxy-total-tokens"]) == spent[3]
    metrics = http.get(proxy.url + "/metrics", headers={"authorization": "Bearer sk-acct-ops-0001"}).text
    counted = re.findall(r'guardproxy_tokens_total\{alias="[^"]+",key="meter"\} (\S+)', metrics)
    assert sum(float(v) for v in counted) == sum(spent)
