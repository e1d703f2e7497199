"""FAULTS.md section B, transport and body faults: silence, stalls, cuts, malformed bodies, in-band errors."""

from __future__ import annotations

import openai
import pytest

from tests.faults.conftest import MALFORMED
from tests.faults.harness import (
    LONG,
    FaultProxy,
    MockUpstream,
    assert_error,
    sse_events,
    timed,
    unique,
)


def test_never_answering_upstream_falls_back(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B19: each attempt ends at its 0.4 s timeout (socket closed upstream), then the fallback answers."""
    with timed() as t:
        r = proxy.chat("hang")
    assert r.status_code == 200, r.text
    assert r.headers["x-guardproxy-outcome"] == "fallback"
    assert r.headers["x-guardproxy-attempts"] == "4"
    assert mock.calls("blackhole") == 3 and mock.calls("ok2") == 1
    assert mock.wait_disconnects("blackhole", 3) is not None  # every timed-out attempt was aborted
    assert t[0] < 4
    assert proxy.settled()


def test_never_answering_everywhere_is_504(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B19: all deployments silent: 504 with the error shape within the deadline."""
    with timed() as t:
        r = proxy.chat("hang-all")
    assert_error(r, 504, "timeout_error")
    assert r.headers["x-should-retry"] == "false"
    assert r.headers["x-guardproxy-attempts"] == "6"
    assert mock.calls("blackhole") == 3 and mock.calls("blackhole2") == 3
    assert mock.wait_disconnects("blackhole2", 3) is not None
    assert t[0] < 4 + 1
    assert proxy.settled()


def test_deadline_bounds_the_whole_request(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B19: nine 0.6 s attempts would take 5.4 s; the 4 s deadline ends the request with 504."""
    with timed() as t:
        r = proxy.chat("hang-long")
    assert_error(r, 504, "timeout_error", "deadline_exceeded")
    assert t[0] < 4 + 1
    attempts = int(r.headers["x-guardproxy-attempts"])
    assert attempts < 9
    assert mock.calls() == attempts
    assert proxy.settled()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_stall_mid_body_counts_as_a_failed_attempt(
    proxy: FaultProxy, mock: MockUpstream, stream: bool
) -> None:
    """B20: headers, half a body (or stream), silence: each attempt times out, the fallback answers once."""
    prompt = unique()
    r = proxy.chat("stall", prompt, stream=stream)
    assert r.status_code == 200, r.text
    if stream:
        events = sse_events(r.text)
        assert events[-1] == "[DONE]"
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1] if c.get("choices"))
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text == prompt
    assert r.headers["x-guardproxy-attempts"] == "4"
    assert mock.calls("stall") == 3 and mock.calls("ok2") == 1
    assert mock.wait_disconnects("stall", 3) is not None
    assert proxy.settled()


@pytest.mark.parametrize("alias", ["cut-early", "cut-early-relay"])
def test_cut_before_the_first_byte_is_retried(proxy: FaultProxy, mock: MockUpstream, alias: str) -> None:
    """B21: a stream cut before anything reached the client is retried: one clean stream, [DONE]."""
    prompt = unique("short")
    r = proxy.chat(alias, prompt, stream=True)
    assert r.status_code == 200, r.text
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1] if c.get("choices"))
    assert text == prompt
    assert mock.calls("cut-then-ok") == 2
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert proxy.settled()


def test_cut_after_bytes_were_sent_ends_with_an_error_event(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B22: error event, no [DONE], the SDK raises APIError, nothing cached."""
    prompt = unique()
    r = proxy.chat("cut-late", prompt, stream=True)
    assert r.status_code == 200
    events = sse_events(r.text)
    assert "[DONE]" not in events
    assert isinstance(events[-1], dict) and events[-1]["error"]["type"] == "upstream_error"
    sent = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1] if c.get("choices"))
    assert sent and LONG.startswith(sent) and sent != LONG
    assert not any(c["choices"][0].get("finish_reason") for c in events[:-1] if c.get("choices"))
    assert r.headers["x-guardproxy-attempts"] == "1" and mock.calls("cut-late") == 1

    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-x", max_retries=0, timeout=10)
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="cut-late", messages=[{"role": "user", "content": prompt}], stream=True
        ):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert received  # the failure came after content
    assert mock.calls("cut-late") == 2  # the cut answer was not cached
    assert proxy.settled()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_200_is_a_failed_attempt(
    proxy: FaultProxy, mock: MockUpstream, kind: str, stream: bool
) -> None:
    """B23: HTML, truncated JSON, a wrong content type: retried, then the fallback; never passed on."""
    prompt = unique()
    r = proxy.chat(f"bad-{kind}", prompt, stream=stream)
    assert r.status_code == 200, r.text
    assert "<html" not in r.text
    if stream:
        events = sse_events(r.text)
        assert events[-1] == "[DONE]"
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1] if c.get("choices"))
    else:
        text = r.json()["choices"][0]["message"]["content"]
    if kind == "wrong_content_type" and not stream:
        # A complete, valid chat.completion JSON labelled text/plain is accepted as the answer it is.
        assert r.headers["x-guardproxy-attempts"] == "1" and mock.calls(kind) == 1
        assert text.startswith("Mock answer:")
    else:
        assert text == prompt
        assert r.headers["x-guardproxy-outcome"] == "fallback"
        assert r.headers["x-guardproxy-attempts"] == "4"
        assert mock.calls(kind) == 3 and mock.calls("ok2") == 1
    assert proxy.settled()


@pytest.mark.parametrize("kind", ["html", "truncated"])
def test_malformed_everywhere_is_502(proxy: FaultProxy, mock: MockUpstream, kind: str) -> None:
    """B23: the client gets the error shape, never the provider's HTML or half a JSON document."""
    r = proxy.chat(f"bad-{kind}-only")
    assert_error(r, 502, "upstream_error")
    assert "<html" not in r.text
    assert r.headers["x-guardproxy-attempts"] == "3" and mock.calls(kind) == 3
    assert proxy.settled()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_in_band_error_is_a_failure_not_an_empty_success(
    proxy: FaultProxy, mock: MockUpstream, stream: bool
) -> None:
    """B24: a 200 carrying `{"error": ...}` (body or SSE event) is retried, then falls back."""
    prompt = unique()
    r = proxy.chat("inband", prompt, stream=stream)
    assert r.status_code == 200, r.text
    if stream:
        events = sse_events(r.text)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1] if c.get("choices"))
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text == prompt
    assert r.headers["x-guardproxy-attempts"] == "4"
    assert mock.calls("inband") == 3 and mock.calls("ok2") == 1
    assert proxy.settled()


def test_in_band_error_everywhere(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B24: buffered: a 502; passthrough: the error event after the relayed text, no [DONE], no stop."""
    r = proxy.chat("inband-only", stream=True)
    assert_error(r, 502, "upstream_error")
    relay = proxy.chat("inband-relay", stream=True)
    assert relay.status_code == 200
    events = sse_events(relay.text)
    assert "[DONE]" not in events and "error" in events[-1]
    assert not any(c["choices"][0].get("finish_reason") for c in events[:-1] if c.get("choices"))
    assert mock.calls("inband") == 3 + 1
    assert proxy.settled()
