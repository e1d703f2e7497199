"""Under pressure: the retry budget and cooldowns on a dead provider (B29), load shedding (max_in_flight)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.faults.harness import (
    FaultProxy,
    MockUpstream,
    assert_error,
    deployment,
    timed,
    unique,
    write_config,
)

N = 200  # concurrent requests on a provider answering 503 to everything
BUDGET = {"attempts": 3, "budget_ratio": 0.2, "budget_min": 3, "budget_window": 10}


@pytest.fixture(scope="module")
def pressure(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    models = {
        "dead": {"deployments": [deployment(mock, "down503", "direct")]},
        "healthy": {"deployments": [deployment(mock, "ok", "direct")]},
    }
    retry = {**BUDGET, "cooldown_failures": 5, "cooldown_seconds": 30}
    server = FaultProxy(write_config(tmp_path_factory.mktemp("pressure"), models, retry=retry))
    yield server
    server.stop()


def test_dead_provider_gets_little_more_than_one_call_per_request(
    pressure: FaultProxy, mock: MockUpstream
) -> None:
    """B29: retries bounded by the budget (20%, min 3), the cooldown opens, clients fail fast."""
    body = {"model": "dead", "messages": [{"role": "user", "content": "are you there?"}]}

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=N)
        async with httpx.AsyncClient(base_url=pressure.url, timeout=30, limits=limits) as client:
            post = client.post
            headers = {"cache-control": "no-store"}
            return await asyncio.gather(
                *(post("/v1/chat/completions", json=body, headers=headers) for _ in range(N))
            )

    with timed() as t:
        responses = asyncio.run(burst())
    for r in responses:
        assert_error(r, 502, "upstream_error")
        assert r.headers["x-should-retry"] == "false"
    calls = mock.calls("down503")
    assert calls <= int(1.2 * N) + BUDGET["budget_min"]
    assert sum(int(r.headers["x-guardproxy-attempts"]) for r in responses) == calls
    assert t[0] < 30
    assert pressure.metric("guardproxy_deployment_cooldown", deployment="dead#0") == 1

    with timed() as fast:
        after = pressure.chat("dead")
    error = assert_error(after, 502, "upstream_error", "deployments_cooling_down")
    assert "cooling down" in error["message"]
    assert after.headers["x-guardproxy-attempts"] == "0" and 1 <= int(after.headers["retry-after"]) <= 30
    assert mock.calls("down503") == calls
    assert fast[0] < 1
    assert pressure.chat("healthy").status_code == 200  # other deployments are unaffected
    assert pressure.settled()


@pytest.fixture(scope="module")
def probing(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    models = {
        "recovering": {"deployments": [deployment(mock, "recovering", "direct")]},
        "still-down": {"deployments": [deployment(mock, "down503", "direct")]},
    }
    retry = {"attempts": 1, "cooldown_failures": 2, "cooldown_seconds": 1}
    server = FaultProxy(write_config(tmp_path_factory.mktemp("probe"), models, retry=retry))
    yield server
    server.stop()


def test_after_the_cooldown_one_probe_decides(probing: FaultProxy, mock: MockUpstream) -> None:
    """Two failures open the cooldown; after it one probe goes out alone; success closes, failure reopens."""
    for alias in ("recovering", "still-down"):
        assert_error(probing.chat(alias), 502, "upstream_error")
        assert_error(probing.chat(alias), 502, "upstream_error")
        skipped = probing.chat(alias)
        assert_error(skipped, 502, "upstream_error", "deployments_cooling_down")
        assert skipped.headers["x-guardproxy-attempts"] == "0"
    assert mock.calls("recovering") == 2 and mock.calls("down503") == 2
    time.sleep(1.1)

    results: list[httpx.Response] = []
    probe = threading.Thread(target=lambda: results.append(probing.chat("recovering")))
    probe.start()  # the probe's answer takes 0.8 s; meanwhile the deployment stays closed to others
    deadline = time.monotonic() + 5
    while mock.calls("recovering") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    during = probing.chat("recovering")
    assert_error(during, 502, "upstream_error", "deployments_cooling_down")
    probe.join(10)
    assert results[0].status_code == 200, results[0].text
    assert probing.chat("recovering").status_code == 200  # closed again
    assert probing.metric("guardproxy_deployment_cooldown", deployment="recovering#0") == 0

    assert_error(probing.chat("still-down"), 502, "upstream_error")  # the probe fails...
    reopened = probing.chat("still-down")  # ...and the cooldown reopens at once
    assert_error(reopened, 502, "upstream_error", "deployments_cooling_down")
    assert mock.calls("down503") == 3
    assert probing.settled()


@pytest.fixture(scope="module")
def narrow(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    models = {
        "slow": {"deployments": [deployment(mock, "slow", "direct")]},
        "ok": {"deployments": [deployment(mock, "ok", "direct")]},
    }
    server = FaultProxy(write_config(tmp_path_factory.mktemp("narrow"), models, server={"max_in_flight": 2}))
    yield server
    server.stop()


def test_load_shedding_above_max_in_flight(narrow: FaultProxy, mock: MockUpstream) -> None:
    """503 overloaded with retry-after at once; the slots come back when the holders' clients leave."""

    def hold() -> None:
        with httpx.Client(base_url=narrow.url, timeout=1.5) as client, pytest.raises(httpx.ReadTimeout):
            client.post("/v1/chat/completions", json={"model": "slow", "messages": _msg()})

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for h in holders:
        h.start()
    deadline = time.monotonic() + 5
    while mock.calls("slow") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    with timed() as t:
        shed = narrow.chat("ok")
    assert_error(shed, 503, "overloaded", "overloaded")
    assert int(shed.headers["retry-after"]) >= 1
    assert t[0] < 1
    assert mock.calls("ok") == 0
    assert narrow.metric("guardproxy_in_flight") == 2
    for h in holders:
        h.join(10)
    assert narrow.settled()
    assert narrow.chat("ok").status_code == 200


def _msg() -> list[dict[str, Any]]:
    return [{"role": "user", "content": unique()}]
