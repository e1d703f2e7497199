"""Each configurable bound on what a request can make us spend, hit at a small configured value through the
real code path: `limits.stream_hold_chars`, `limits.max_sse_line_bytes`, `responses.memory_mb`,
`record_queue` (docs/operations.md section 6, docs/security.md sections 3 and 6)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from proxy.auth import Caller
from proxy.metrics import Metrics
from proxy.records import open_recorder
from proxy.services import load_runtime
from tests.servers import ServerThread

RUN = "eyJ" + "A" * 3000  # could still be a token until it ends: held back whole under the default cap
MOCK = {
    # paced: each chunk comes in its own network read, so the run is held across reads (what arrives in
    # one read is judged in one piece, and a run that ends inside it is no longer "could still be")
    "longrun": {
        "behaviour": "static",
        "content": f"before {RUN} after",
        "stream_chunk_chars": 100,
        "chunk_delay_ms": 2,
    },
    "bigline": {"behaviour": "static", "content": "x" * 4000, "stream_chunk_chars": 4000},
}


def _dep(upstream: ServerThread, name: str, transport: str = "direct") -> dict[str, Any]:
    return {
        "model": f"openai/{name}",
        "api_base": upstream.url + "/v1",
        "api_key": "sk-mock",
        "transport": transport,
    }


@pytest.mark.parametrize(
    ("hold", "expected"), [(1024, "before [REDACTED] after"), (None, f"before {RUN} after")]
)
def test_a_run_longer_than_stream_hold_chars_is_not_sent(
    make_config: Callable[..., Path],
    start_proxy: Callable[[Path], ServerThread],
    upstream: ServerThread,
    client_for: Callable[..., openai.OpenAI],
    hold: int | None,
    expected: str,
) -> None:
    limits = {"stream_hold_chars": hold} if hold else {}
    models = {"chat": {"policy": "pii-redact", "deployments": [_dep(upstream, "longrun")]}}
    proxy = start_proxy(make_config(models, limits=limits))
    stream = client_for(proxy).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_an_sse_line_longer_than_max_sse_line_bytes_fails_the_attempt(
    make_config: Callable[..., Path],
    start_proxy: Callable[[Path], ServerThread],
    upstream: ServerThread,
    http: httpx.Client,
    transport: str,
) -> None:
    models = {
        "long": {"deployments": [_dep(upstream, "bigline", transport)]},
        "fallback": {
            "deployments": [_dep(upstream, "bigline", transport), _dep(upstream, "echo", transport)]
        },
    }
    config = make_config(models, limits={"max_sse_line_bytes": 1024}, retry={"attempts": 1, "deadline": 20})
    proxy = start_proxy(config)

    def chat(model: str) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "fell back"}], "stream": True}
        return http.post(proxy.url + "/v1/chat/completions", json=body)

    alone = chat("long")
    assert alone.status_code == 502, alone.text
    assert alone.json()["error"]["type"] == "upstream_error"
    assert "line limit (1024 bytes)" in alone.json()["error"]["message"]
    fell_back = chat("fallback")
    assert fell_back.status_code == 200 and "fell back" in fell_back.text


def test_stored_responses_past_responses_memory_mb_drop_the_oldest(
    make_config: Callable[..., Path], start_proxy: Callable[[Path], ServerThread], http: httpx.Client
) -> None:
    models = {"m": {"deployments": [{"model": "mock/static", "mock": {"content": "ok"}}]}}
    proxy = start_proxy(make_config(models, cache={"backend": "none"}, responses={"memory_mb": 1}))
    ids = []
    for fill in "ab":  # about 600 KB stored each (input items and messages): together past 1 MiB
        created = http.post(proxy.url + "/v1/responses", json={"model": "m", "input": fill * 300_000})
        assert created.status_code == 200, created.text
        ids.append(created.json()["id"])
    assert http.get(f"{proxy.url}/v1/responses/{ids[0]}").status_code == 404  # the oldest went
    assert http.get(f"{proxy.url}/v1/responses/{ids[1]}").status_code == 200


def test_answers_past_record_queue_are_dropped_and_counted(make_config: Callable[..., Path]) -> None:
    runtime = load_runtime(make_config({}, record="all", record_queue=2))
    metrics = Metrics()
    caller = Caller(name="anonymous", key_hash=None)
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
    verdict = SimpleNamespace(outcome="passed", deployment="mock/static", repairs=(), completion=answer)

    async def run() -> None:
        recorder = open_recorder(runtime.settings, metrics=metrics, secrets=())
        for n in range(3):  # the writer has not run yet: the queue holds 2, the third is dropped
            recorder.settle(
                runtime.settings,
                runtime.policies["default"],
                caller,
                request_id=f"req-{n}",
                alias="m",
                body={"messages": [{"role": "user", "content": "hi"}]},
                cache_key="",
                verdict=verdict,
                events=SimpleNamespace(),
            )
        await recorder.close()

    asyncio.run(run())

    def counted(result: str) -> float | None:
        return metrics.registry.get_sample_value("guardproxy_records_total", {"result": result})

    assert (counted("dropped"), counted("stored")) == (1, 2)
