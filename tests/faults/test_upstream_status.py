"""FAULTS.md section B, status faults: 429, 5xx, 400, 401/403, refused connections, mixed failures."""

from __future__ import annotations

from tests.faults.harness import FaultProxy, MockUpstream, assert_error, timed, unique


def test_429_with_retry_after_waits_then_succeeds(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B14: the Retry-After pause is honoured (it fits the deadline), 2 attempts, cached once."""
    prompt = unique()
    with timed() as t:
        r = proxy.chat("ra-wait", prompt)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == prompt
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert mock.calls("ra1-then-ok") == 2
    assert proxy.sleeps.pauses == [1.0]  # exactly the provider's Retry-After, not the tiny backoff
    assert t[0] < 4
    again = proxy.chat("ra-wait", prompt)
    assert again.headers["x-guardproxy-cache"] == "hit" and again.headers["x-guardproxy-attempts"] == "0"
    assert again.json()["choices"] == r.json()["choices"]
    assert mock.calls("ra1-then-ok") == 2
    assert proxy.settled()


def test_429_with_long_retry_after_everywhere_is_immediate(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B15: no long sleep; 429 at once with retry-after and x-should-retry: false."""
    with timed() as t:
        r = proxy.chat("ra-long")
    assert_error(r, 429, "rate_limit_error")
    assert t[0] < 2
    assert proxy.sleeps.pauses == []
    assert int(r.headers["retry-after"]) >= 3600
    assert int(r.headers["retry-after-ms"]) >= 3_600_000
    assert r.headers["x-should-retry"] == "false"
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert mock.calls("ra3600") == 1 and mock.calls("ra3600b") == 1
    assert proxy.settled()


def test_500_then_200_retries_once(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B16: 200 after exactly 2 attempts; a retry metric incremented; one cache entry."""
    label = "openai/e500-then-ok"
    retries_before = proxy.metric("guardproxy_retries_total", deployment=label)
    prompt = unique()
    r = proxy.chat("flaky500", prompt)
    assert r.status_code == 200, r.text
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert r.headers["x-guardproxy-outcome"] == "pass"
    assert mock.calls("e500-then-ok") == 2
    assert proxy.metric("guardproxy_retries_total", deployment=label) == retries_before + 1
    assert len(proxy.sleeps.pauses) == 1 and proxy.sleeps.pauses[0] <= 0.05
    again = proxy.chat("flaky500", prompt)
    assert again.headers["x-guardproxy-cache"] == "hit"
    assert mock.calls("e500-then-ok") == 2
    assert proxy.settled()


def test_context_length_goes_to_the_next_deployment(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B17: a context-length refusal is not retried; a larger model further down the chain may take it."""
    r = proxy.chat("ctx")
    assert r.status_code == 200, r.text
    assert r.headers["x-guardproxy-outcome"] == "fallback"
    assert r.headers["x-guardproxy-deployment"] == "openai/ok2"
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert mock.calls("ctx400") == 1 and mock.calls("ok2") == 1
    assert proxy.settled()


def test_bad_request_is_not_retried_nor_falls_back(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B17: 400 with the provider's message, its key and URLs removed; one attempt."""
    r = proxy.chat("badparam")
    error = assert_error(r, 400, "invalid_request_error")
    assert "frobnicate" in error["message"]
    assert r.headers["x-guardproxy-attempts"] == "1"
    assert r.headers["x-should-retry"] == "false"
    assert mock.calls("bad400") == 1 and mock.calls("ok2") == 0
    assert proxy.sleeps.pauses == []
    assert proxy.settled()


def test_bad_credentials_fall_back(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B18: 401 upstream: no retry on that deployment, the next one answers."""
    r = proxy.chat("badkey")
    assert r.status_code == 200, r.text
    assert r.headers["x-guardproxy-outcome"] == "fallback"
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert mock.calls("auth401") == 1 and mock.calls("ok2") == 1
    assert proxy.settled()


def test_bad_credentials_everywhere_is_502(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B18: every deployment refused our credentials: 502 (never 401 to our client), no key in the body."""
    r = proxy.chat("badkeys")
    assert_error(r, 502, "upstream_error")
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert r.headers["x-should-retry"] == "false"
    assert mock.calls("auth401") == 1 and mock.calls("auth403") == 1
    assert proxy.settled()


def test_every_deployment_failing_differently(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B28: 503s and timeouts: deterministic 502, attempts capped by the policy's max_attempts (6)."""
    with timed() as t:
        r = proxy.chat("mixed")
    assert_error(r, 502, "upstream_error")
    assert r.headers["x-guardproxy-attempts"] == "6"
    assert r.headers["x-should-retry"] == "false"
    assert mock.calls("down503") == 3 and mock.calls("blackhole") == 3 and mock.calls("limited429") == 0
    assert t[0] < 4
    assert proxy.settled()


def test_connection_refused_falls_back_at_once(proxy: FaultProxy, mock: MockUpstream) -> None:
    """B30: nothing listens on the first deployment: no retry sleeps, the next deployment answers."""
    with timed() as t:
        r = proxy.chat("refused")
    assert r.status_code == 200, r.text
    assert r.headers["x-guardproxy-outcome"] == "fallback"
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert mock.calls("ok2") == 1
    assert proxy.sleeps.pauses == []
    assert t[0] < 3
    assert proxy.settled()
