"""FAULTS.md section C: client disconnects, concurrent identical requests, client retries, usage."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from proxy.mock.behaviours import usage_for
from tests.faults.harness import FaultProxy, MockUpstream, assert_error, unique

DISCONNECT_BOUND = 1.5  # seconds from the client leaving to the upstream seeing the abort (about 1 s)


def _body(alias: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": alias, "messages": [{"role": "user", "content": prompt}], **extra}


def test_disconnect_mid_stream_cancels_the_upstream(proxy: FaultProxy, mock: MockUpstream) -> None:
    """C31: the upstream stream is aborted within about 1 s; the slot is released; nothing cached."""
    body = _body("slow-stream", unique(), stream=True)
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200 and r.headers["x-guardproxy-cache"] == "miss"
            for line in r.iter_lines():
                if '"content"' in line:
                    break
            left = time.monotonic()
    assert mock.wait_disconnects("slow-stream", 1, within=5) is not None
    assert time.monotonic() - left < DISCONNECT_BOUND + 1.5
    assert proxy.settled()
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as again:
            assert again.headers["x-guardproxy-cache"] == "miss"  # the partial answer was not stored
    assert mock.calls("slow-stream") == 2
    assert proxy.settled()


@pytest.mark.parametrize(
    ("alias", "stream"),
    [("slow", False), ("slow", True), ("slow-relay", True)],
    ids=["json", "buffered-sse", "passthrough-sse"],
)
def test_disconnect_before_the_first_byte_cancels_the_upstream(
    proxy: FaultProxy, mock: MockUpstream, alias: str, stream: bool
) -> None:
    """C32: the client gives up while the upstream is still thinking: the upstream call is cancelled."""
    cancelled_before = proxy.metric("guardproxy_requests_total", status="499")
    with httpx.Client(base_url=proxy.url, timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/chat/completions", json=_body(alias, unique(), stream=stream))
    waited = mock.wait_disconnects("slow", 1, within=5)
    assert waited is not None and waited < DISCONNECT_BOUND  # well before the mock's 4 s answer
    assert mock.calls("slow") == 1
    assert proxy.settled()
    if not stream:
        assert proxy.metric("guardproxy_requests_total", status="499") == cancelled_before + 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_concurrent_identical_requests_make_one_upstream_call(
    proxy: FaultProxy, mock: MockUpstream, stream: bool
) -> None:
    """C33: 50 identical requests on a cold cache: exactly 1 upstream call, 50 identical answers."""
    body = _body("shared", unique(), stream=stream)

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=proxy.url, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(50)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 50
    assert mock.calls("slow-ok") == 1
    if stream:
        texts = {"".join(line for line in r.text.splitlines() if '"content"' in line) for r in responses}
        assert all(r.text.rstrip().endswith("data: [DONE]") for r in responses)
    else:
        texts = {r.text for r in responses}
    assert len(texts) == 1
    assert proxy.settled()


def test_concurrent_identical_requests_share_a_failure(proxy: FaultProxy, mock: MockUpstream) -> None:
    """C33: the leader fails: one follower tries once more, then all get the error; no pile-up."""
    body = _body("shared-fail", unique())

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=30)
        async with httpx.AsyncClient(base_url=proxy.url, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(20)))

    responses = asyncio.run(burst())
    for r in responses:
        assert_error(r, 502, "upstream_error")
    assert mock.calls("slow503") == 2 * 3  # the leader's 3 attempts, then one follower's 3
    assert proxy.settled()


def test_client_retry_is_served_from_the_cache(proxy: FaultProxy, mock: MockUpstream) -> None:
    """C34: the SDK's retry of an answered request (x-stainless-retry-count: 1) costs no upstream call."""
    body = _body("ok", unique())
    first = proxy.http.post("/v1/chat/completions", json=body, headers={"x-stainless-retry-count": "0"})
    retry = proxy.http.post("/v1/chat/completions", json=body, headers={"x-stainless-retry-count": "1"})
    assert first.status_code == retry.status_code == 200
    assert retry.headers["x-guardproxy-cache"] == "hit" and retry.headers["x-guardproxy-attempts"] == "0"
    assert retry.json() == first.json()
    assert mock.calls("ok") == 1
    assert proxy.settled()


def test_client_retry_joins_the_request_in_flight(proxy: FaultProxy, mock: MockUpstream) -> None:
    """C34: a retry arriving while the first request is still upstream waits for it: one paid call."""
    body = _body("shared", unique())
    results: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: results.append(proxy.http.post("/v1/chat/completions", json=body))
    )
    first.start()
    deadline = time.monotonic() + 5
    while mock.calls("slow-ok") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with httpx.Client(base_url=proxy.url, timeout=10) as other:
        retry = other.post("/v1/chat/completions", json=body, headers={"x-stainless-retry-count": "1"})
    first.join(10)
    assert results[0].status_code == retry.status_code == 200
    assert retry.json() == results[0].json()
    assert mock.calls("slow-ok") == 1
    assert proxy.settled()


def test_include_usage_with_a_retry_in_play(proxy: FaultProxy, mock: MockUpstream) -> None:
    """C35: usage only on the last chunk (choices []), the final answer's own; the SDK iterates cleanly."""
    prompt = unique()
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-x", max_retries=0, timeout=10)
    raw = client.chat.completions.with_raw_response.create(
        model="flaky500",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-request-id"]
    assert raw.headers["x-guardproxy-attempts"] == "2"
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    expected = usage_for({"messages": [{"role": "user", "content": prompt}]}, prompt, ())
    assert last.usage.prompt_tokens == expected["prompt_tokens"]
    assert last.usage.completion_tokens == expected["completion_tokens"]
    assert last.usage.total_tokens == expected["total_tokens"]
    assert raw.headers["x-guardproxy-total-tokens"] == str(expected["total_tokens"])  # the 500 cost nothing
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == prompt
    assert len({c.id for c in chunks}) == 1
    assert mock.calls("e500-then-ok") == 2
    assert proxy.settled()
