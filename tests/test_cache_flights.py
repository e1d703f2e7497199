"""Single-flight through one real server: concurrent identical requests make one upstream call."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.servers import mock_calls as calls

MOCK = {
    "slow": {"behaviour": "echo", "latency_ms": 400},
    "flop": {
        "behaviour": "script",
        "script": [
            {"behaviour": "error", "status": 400, "latency_ms": 400},
            {"behaviour": "echo", "latency_ms": 200},
        ],
    },
}


@pytest.fixture
def proxy(make_config, start_proxy, upstream):
    def net(label: str) -> dict[str, Any]:
        return {"model": f"openai/{label}", "api_base": upstream.url + "/v1", "api_key": "sk-up"}

    return start_proxy(make_config({label: {"deployments": [net(label)]} for label in MOCK}))


async def burst(url: str, model: str, n: int, *, streams: int = 0) -> list[httpx.Response]:
    """`n` identical requests at once, the first `streams` of them with `stream: true`."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one(i: int) -> httpx.Response:
            body = {"model": model, "messages": [{"role": "user", "content": "the same question"}]}
            return await client.post("/v1/chat/completions", json={**body, "stream": i < streams})

        return await asyncio.gather(*(one(i) for i in range(n)))


def content(r: httpx.Response) -> str:
    if r.headers["content-type"].startswith("text/event-stream"):
        events = [e.removeprefix("data: ") for e in r.text.split("\n\n") if e.startswith("data: {")]
        chunks = [json.loads(e) for e in events]
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return str(r.json()["choices"][0]["message"]["content"])


def test_fifty_concurrent_identical_requests_make_one_upstream_call(http, proxy, upstream):
    answers = asyncio.run(burst(proxy.url, "slow", 50, streams=10))
    assert [r.status_code for r in answers] == [200] * 50
    assert {content(r) for r in answers} == {"the same question"}
    plain = [r for r in answers if r.headers["content-type"].startswith("application/json")]
    assert len(plain) == 40 and len({r.content for r in plain}) == 1  # the very same answer, id included
    assert len({r.headers["x-guardproxy-cache-key"] for r in answers}) == 1
    assert calls(http, upstream, "slow") == 1
    after = http.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "slow", "messages": [{"role": "user", "content": "the same question"}]},
    )
    assert after.headers["x-guardproxy-cache"] == "hit" and after.content == plain[0].content
    assert calls(http, upstream, "slow") == 1


def test_when_the_leader_fails_one_follower_retries_for_everyone(http, proxy, upstream):
    answers = asyncio.run(burst(proxy.url, "flop", 50))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 49 + [400]  # the leader's own client gets its error, once
    assert {content(r) for r in answers if r.status_code == 200} == {"the same question"}
    assert calls(http, upstream, "flop") == 2  # the failed call and one retry, not 49
