"""Hits answered from the memory tier (proxy.hits): the same answer and headers as the full path, and every
guarantee kept: per-key scope, rpm limits, metrics and the access line, reloads, `Cache-Control`."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.helpers import metric_sum, wait_until

KEYS = [
    {"name": "alice", "key": "sk-mem-alice-001", "rpm": 3},
    {"name": "bob", "key": "sk-mem-bob-00001"},
    {"name": "ops", "key": "sk-mem-ops-00001", "admin": True},
]
BODY = {"model": "echo", "messages": [{"role": "user", "content": "remember me"}]}


def ask(proxy, key: str, body=None, **headers: str) -> httpx.Response:
    return httpx.post(
        proxy.url + "/v1/chat/completions",
        json=body or BODY,
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=20,
    )


@pytest.fixture
def proxy(make_config, start_proxy):
    return start_proxy(make_config({"echo": {"deployments": [{"model": "mock/echo"}]}}, auth={"keys": KEYS}))


def metric(proxy, name: str, **labels: str) -> float:
    text = httpx.get(proxy.url + "/metrics", headers={"authorization": "Bearer sk-mem-ops-00001"}).text
    return metric_sum(text, name, **labels)


def test_memory_hits_match_the_full_path_and_keep_the_rate_limit(proxy, caplog) -> None:
    first, second, third = (ask(proxy, "sk-mem-bob-00001") for _ in range(3))
    assert [r.headers["x-guardproxy-cache"] for r in (first, second, third)] == ["miss", "hit", "hit"]
    assert third.content == second.content == first.content
    ours = {
        k: v for k, v in second.headers.items() if k.startswith("x-guardproxy-") and "request-id" not in k
    }
    assert {k: v for k, v in third.headers.items() if k in ours} == ours  # the memory hit: same headers
    assert third.headers["x-guardproxy-request-id"] != second.headers["x-guardproxy-request-id"]
    assert metric(proxy, "guardproxy_cache_total", result="hit") == 2
    assert metric(proxy, "guardproxy_requests_total", status="200") == 3

    # alice's scope is her own key: bob's answer is not hers, from memory or elsewhere
    assert [ask(proxy, "sk-mem-alice-001").headers["x-guardproxy-cache"] for _ in range(3)] == [
        "miss",
        "hit",
        "hit",
    ]
    limited = ask(proxy, "sk-mem-alice-001")  # her 3 requests per minute were spent, hits included
    assert limited.status_code == 429

    assert (
        ask(proxy, "sk-mem-bob-00001", **{"cache-control": "no-cache"}).headers["x-guardproxy-cache"]
        == "refresh"
    )
    with caplog.at_level(logging.INFO, logger="guardproxy.access"):
        streamed = ask(proxy, "sk-mem-bob-00001", {**BODY, "stream": True})
        streamed_again = ask(proxy, "sk-mem-bob-00001", {**BODY, "stream": True})
        ours = streamed_again.headers["x-guardproxy-request-id"]
        # the line is written once the answer has ended: a moment after the client has it
        (line,) = wait_until(
            lambda: [r.fields for r in caplog.records if getattr(r, "fields", {}).get("request_id") == ours]
        )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed_again.content == streamed.content and streamed_again.text.endswith("data: [DONE]\n\n")
    assert streamed_again.headers["x-guardproxy-cache"] == "hit"
    assert (line["key"], line["cache"], line["status"], line["outcome"]) == ("bob", "hit", 200, "pass")


def test_the_answer_stays_the_servers_own_after_a_bad_request(proxy) -> None:
    assert ask(proxy, "sk-mem-bob-00001").status_code == 200
    assert ask(proxy, "sk-mem-bob-00001").headers["x-guardproxy-cache"] == "hit"
    wrong = httpx.post(
        proxy.url + "/v1/chat/completions",
        json=BODY,
        headers={"authorization": "Bearer sk-not-a-key-000"},
        timeout=20,
    )
    assert wrong.status_code == 401  # the same bytes from an unknown key: refused, never served
    unknown = {**BODY, "model": "nothing"}
    assert ask(proxy, "sk-mem-bob-00001", unknown).status_code == 404
