"""Streams that fail: cuts before and after the first byte, client disconnects, slow answers kept alive,
and what reaches the cache. Real servers, the official SDK, the HTTP mock's counters."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from proxy.mock.server import create_mock_app
from tests.servers import ServerThread
from tests.test_streaming import (
    NO_STORE,
    PROSE,
    deployment,
    events,
    raw_stream,
    sdk,
    sdk_text,
    text_of,
    write_config,
)

SHORT = "A short answer that the pii guard holds back until the stream ends."
FALLBACK = "The fallback deployment's answer, also short enough to be held back."
LONG = PROSE * 3
MOCKS: dict[str, dict[str, Any]] = {
    "cut-once": {
        "behaviour": "script",
        "script": [
            {"behaviour": "static", "content": SHORT, "stream_cut": True, "stream_chunk_chars": 5},
            {"behaviour": "static", "content": SHORT, "stream_chunk_chars": 5},
        ],
    },
    "cut-always": {"behaviour": "static", "content": LONG, "stream_cut": True, "stream_chunk_chars": 7},
    "cut-short": {"behaviour": "static", "content": SHORT, "stream_cut": True, "stream_chunk_chars": 5},
    "good": {"behaviour": "static", "content": FALLBACK, "stream_chunk_chars": 5},
    "long": {"behaviour": "static", "content": LONG, "stream_chunk_chars": 7},
    "slow": {"behaviour": "static", "content": LONG, "stream_chunk_chars": 4, "chunk_delay_ms": 50},
    "late": {"behaviour": "static", "content": LONG, "latency_ms": 700, "stream_chunk_chars": 7},
    "late-cut": {"behaviour": "static", "content": LONG, "latency_ms": 300, "stream_cut": True},
    "paced": {"behaviour": "static", "content": LONG, "stream_chunk_chars": 20, "chunk_delay_ms": 10},
    "stall": {"behaviour": "stall", "stream_chunk_chars": 3},
    "inband": {"behaviour": "stream_error", "content": LONG, "message": "upstream exploded"},
}
TRANSPORTS = ("inproc", "direct", "litellm")
NET = ("direct", "litellm")
POLICIES: dict[str, dict[str, Any]] = {
    "buf": {"stream": "buffer"},
    "pt": {"stream": "passthrough"},
    # pii holds back 260 characters: SHORT never leaves before the stream ends
    "pt-hold": {"stream": "passthrough", "validators": [{"type": "pii", "on_fail": "redact"}]},
}
# alias stem -> (policy per mode, mock labels of the chain)
ALIASES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "retry": ({"buffer": "buf", "passthrough": "pt-hold"}, ("cut-once",)),
    "fallback": ({"buffer": "buf", "passthrough": "pt-hold"}, ("cut-short", "good")),
    "cut": ({"buffer": "buf", "passthrough": "pt"}, ("cut-always",)),
    "long": ({"buffer": "buf", "passthrough": "pt"}, ("long",)),
    "slow": ({"buffer": "buf", "passthrough": "pt"}, ("slow",)),
    "late": ({"buffer": "buf"}, ("late",)),
    "late-cut": ({"buffer": "buf"}, ("late-cut",)),
    "paced": ({"buffer": "buf", "passthrough": "pt"}, ("paced",)),
    "inband": ({"buffer": "buf", "passthrough": "pt"}, ("inband",)),
    "stall": ({"passthrough": "pt"}, ("stall",)),
}


def name(stem: str, mode: str, transport: str) -> str:
    return f"{stem}-{mode}-{transport}"


@pytest.fixture(scope="module")
def mock_server() -> Iterator[ServerThread]:
    server = ServerThread(create_mock_app(MOCKS)).start()
    yield server
    server.stop()


def start(folder: Any, mock: ServerThread, **sections: Any) -> ServerThread:
    from proxy.app import create_app

    models = {
        name(stem, mode, t): {
            "policy": policy,
            "deployments": [
                {**deployment(label, t, mock.url, MOCKS), **({"timeout": 0.5} if label == "stall" else {})}
                for label in chain
            ],
        }
        for stem, (policies, chain) in ALIASES.items()
        for mode, policy in policies.items()
        for t in TRANSPORTS
    }
    # Generous retry budget and cooldowns: each test's retries must not depend on the tests before it.
    retry = {
        "initial_backoff": 0.01,
        "max_backoff": 0.05,
        "deadline": 20,
        "budget_min": 1000,
        "cooldown_failures": 1000,
    }
    server = ServerThread(create_app(write_config(folder, models, POLICIES, retry=retry, **sections))).start()
    for t in TRANSPORTS:  # the first litellm stream of a process is slow (lazy imports): not in a timed test
        raw_stream(server, name("long", "passthrough", t))
    return server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, mock_server: ServerThread) -> Iterator[ServerThread]:
    server = start(tmp_path_factory.mktemp("faults"), mock_server)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def waiting_proxy(
    tmp_path_factory: pytest.TempPathFactory, mock_server: ServerThread
) -> Iterator[ServerThread]:
    """Buffer mode commits to a stream and sends keep-alive comments after 0.2 s of waiting."""
    server = start(tmp_path_factory.mktemp("keepalive"), mock_server, server={"keepalive_seconds": 0.2})
    yield server
    server.stop()


@pytest.fixture
def mock(mock_server: ServerThread) -> ServerThread:
    httpx.post(mock_server.url + "/mock/reset").raise_for_status()
    return mock_server


def stats(mock: ServerThread) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(mock.url + "/mock/stats").json()
    return data


# --- cut before the first byte: retried or fallen back, one clean stream --------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["buffer", "passthrough"])
@pytest.mark.parametrize("stem", ["retry", "fallback"])
def test_cut_before_first_byte_is_retried(proxy, mock, stem, mode, transport):
    model = name(stem, mode, transport)
    with sdk(proxy).chat.completions.with_streaming_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=NO_STORE
    ) as response:
        assert response.status_code == 200
        chunks = list(response.parse())
        headers = response.headers
    assert sdk_text(chunks) == (FALLBACK if stem == "fallback" else SHORT)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert int(headers["x-guardproxy-attempts"]) >= 2
    if stem == "fallback" and transport != "inproc":
        assert headers["x-guardproxy-deployment"] == "openai/good"
    outcome = "fallback" if stem == "fallback" else "pass"
    if mode == "passthrough":
        assert chunks[-1].model_extra["guardproxy"]["outcome"] == outcome
    else:
        assert headers["x-guardproxy-outcome"] == outcome
    if transport != "inproc":
        calls = stats(mock)["calls"]
        assert calls.get("cut-once", 0) + calls.get("cut-short", 0) >= 1


# --- cut after the first byte: an error event, no [DONE], the SDK raises --------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cut_after_first_byte_passthrough(proxy, transport):
    model = name("cut", "passthrough", transport)
    response, data = raw_stream(proxy, model, headers={})
    assert response.status_code == 200
    payloads = events(data)
    assert b"[DONE]" not in data
    assert "error" in payloads[-1] and payloads[-1]["error"]["type"] == "upstream_error"
    sent = text_of(payloads)
    assert sent and LONG.startswith(sent) and sent != LONG
    assert not any(p["choices"][0]["finish_reason"] for p in payloads[:-1] if p.get("choices"))
    with pytest.raises(openai.APIError):
        list(
            sdk(proxy).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    again, _ = raw_stream(proxy, model, headers={})
    assert again.headers["x-guardproxy-cache"] == "miss"  # a cut answer is never stored


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cut_after_first_byte_buffer(waiting_proxy, transport):
    """Buffer mode commits after keepalive_seconds; every attempt then fails: an error event ends it."""
    model = name("late-cut", "buffer", transport)
    response, data = raw_stream(waiting_proxy, model, headers={})
    assert response.status_code == 200 and response.headers["x-guardproxy-outcome"] == "streaming"
    assert data.startswith(b": keep-alive\n\n")
    assert b"[DONE]" not in data
    payloads = events(data)
    assert len(payloads) == 1 and payloads[0]["error"]["type"] == "upstream_error"
    if transport != "direct":
        return  # the SDK's side is the same for every upstream path
    with pytest.raises(openai.APIError):
        list(
            sdk(waiting_proxy).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=NO_STORE
            )
        )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_in_band_error_event_is_a_failure(proxy, transport):
    """An upstream `data: {"error": ...}` is never turned into a successful (empty or partial) answer."""
    response, data = raw_stream(proxy, name("inband", "buffer", transport))
    assert response.status_code == 502 and json.loads(data)["error"]["type"] == "upstream_error"
    assert int(response.headers["x-guardproxy-attempts"]) >= 2  # retried like any transient failure
    response, data = raw_stream(proxy, name("inband", "passthrough", transport))
    payloads = events(data)
    assert response.status_code == 200 and b"[DONE]" not in data
    assert LONG.startswith(text_of(payloads)) and payloads[-1]["error"]["type"] == "upstream_error"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stall_after_first_byte_hits_the_idle_timeout(proxy, transport):
    started = time.monotonic()
    response, data = raw_stream(proxy, name("stall", "passthrough", transport))
    assert time.monotonic() - started < 10  # the 0.5 s idle timeout, not a hang
    payloads = events(data)
    assert b"[DONE]" not in data and text_of(payloads)  # half the answer went out, then the stall
    assert payloads[-1]["error"]["type"] == "timeout_error"


# --- keep-alive while buffering ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_keepalive_comments_while_buffering(waiting_proxy, transport):
    model = name("late", "buffer", transport)
    response, data = raw_stream(waiting_proxy, model, stream_options={"include_usage": True})
    assert response.headers["x-guardproxy-outcome"] == "streaming"
    assert (
        response.headers["x-guardproxy-policy"] == "buf"
        and response.headers["x-guardproxy-cache"] == "bypass"
    )
    assert len(response.headers["x-guardproxy-cache-key"]) == 64 and response.headers["x-request-id"]
    assert data.count(b": keep-alive\n\n") >= 2
    payloads = events(data)
    assert text_of(payloads) == LONG and payloads[-1] == "[DONE]"
    assert payloads[-2]["guardproxy"]["outcome"] == "pass" and payloads[-2]["usage"]["total_tokens"] > 0
    if transport != "direct":
        return  # the SDK's side is the same for every upstream path
    chunks = list(
        sdk(waiting_proxy).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=NO_STORE
        )
    )
    assert sdk_text(chunks) == LONG
    assert chunks[-1].model_extra["guardproxy"]["attempts"] == 1


# --- client disconnect ----------------------------------------------------------------------------


def disconnect_after_first_bytes(server: ServerThread, model: str, marker: bytes) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30) as response:
        seen = b""
        for piece in response.iter_raw():
            seen += piece
            if marker in seen:
                break  # leaving the block closes the connection mid-stream


def wait_for_disconnect(mock: ServerThread, label: str, limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if stats(mock)["disconnects"].get(label):
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"the upstream stream of {label} was not cancelled within {limit} s")


@pytest.mark.parametrize("transport", NET)
@pytest.mark.parametrize("mode", ["buffer", "passthrough"])
def test_client_disconnect_cancels_upstream(proxy, waiting_proxy, mock, mode, transport):
    server = waiting_proxy if mode == "buffer" else proxy
    marker = b": keep-alive" if mode == "buffer" else b'"content":"Stre'
    disconnect_after_first_bytes(server, name("slow", mode, transport), marker)
    elapsed = wait_for_disconnect(mock, "slow", 5.0)  # generous; the contract says about a second
    print(f"\ndisconnect -> upstream cancelled ({mode}, {transport}): {elapsed * 1000:.0f} ms")
    assert stats(mock)["calls"]["slow"] == 1
    body = {"model": name("slow", mode, transport), "messages": [{"role": "user", "content": "hi"}]}
    again = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30)  # not streamed: fast
    assert again.status_code == 200 and again.headers["x-guardproxy-cache"] == "miss"  # nothing stored


# --- time to first byte (measured, reported, not asserted) -----------------------------------------


def first_content_after(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first content character, seconds to the end)."""
    started = time.perf_counter()
    first, seen = None, b""
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        for piece in response.iter_raw():
            seen += piece
            if first is None and re.search(rb'"content":"[^"]', seen):
                first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started


def test_time_to_first_byte(proxy, mock):
    messages = [{"role": "user", "content": "hi"}]
    rows = {}
    for label, url, model in [
        ("upstream", mock.url + "/v1/chat/completions", "paced"),
        ("passthrough", proxy.url + "/v1/chat/completions", name("paced", "passthrough", "direct")),
        ("buffer", proxy.url + "/v1/chat/completions", name("paced", "buffer", "direct")),
    ]:
        samples = [
            first_content_after(url, {"model": model, "messages": messages, "stream": True}, NO_STORE)
            for _ in range(3)
        ]
        rows[label] = (sorted(s[0] for s in samples)[1], sorted(s[1] for s in samples)[1])
    for label, (ttfb, total) in rows.items():
        print(f"\nTTFB {label:<12} median {ttfb * 1000:7.1f} ms   total {total * 1000:7.1f} ms")
    assert all(total < 20 for _, total in rows.values())
