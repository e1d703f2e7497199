"""Cooldowns and retry budget shared by replicas through Redis; local state when Redis fails."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
import yaml

from proxy.health_state import SharedHealth, SharedRetryBudget
from tests.conftest import ConfigFactory
from tests.helpers import wait_until
from tests.servers import ServerThread, mock_calls

MOCK = {"fail": {"behaviour": "error", "status": 500}}
FAILURES, COOL = 4, 1.5


def _config(make_config: ConfigFactory, upstream: ServerThread, redis_url: str) -> Any:
    net = {"api_base": upstream.url + "/v1", "api_key": "sk-up", "transport": "direct"}
    return make_config(
        {"flaky": {"deployments": [{"model": "openai/fail", **net}]}},
        cache={"backend": "redis", "url": redis_url, "secret": "s" * 16},
        retry={"attempts": 1, "cooldown_failures": FAILURES, "cooldown_seconds": COOL, "deadline": 10},
    )


def _ask(http: httpx.Client, server: ServerThread, n: int = 1) -> list[int]:
    body = {"model": "flaky", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"cache-control": "no-store"}
    return [
        http.post(server.url + "/v1/chat/completions", json=body, headers=headers).status_code
        for _ in range(n)
    ]


def test_two_replicas_count_failures_together_and_probe_once(
    make_config: ConfigFactory,
    start_proxy: Any,
    upstream: ServerThread,
    redis_server: Any,
    http: httpx.Client,
) -> None:
    config = _config(make_config, upstream, redis_server.url)
    a, b = start_proxy(config), start_proxy(config)
    _ask(http, a, 2)
    _ask(http, b, 2)
    assert mock_calls(http, upstream, "fail") == FAILURES  # neither replica alone reached the limit
    time.sleep(0.3)  # a tick or two: both mirrors know
    _ask(http, a, 3)
    _ask(http, b, 3)
    assert mock_calls(http, upstream, "fail") == FAILURES  # cooled on both
    time.sleep(COOL + 0.1)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # both replicas keep asking once the cooldown is over
        _ask(http, a)
        _ask(http, b)
        time.sleep(0.02)
    assert mock_calls(http, upstream, "fail") == FAILURES + 1  # one probe for the fleet; it failed again
    metrics = http.get(a.url + "/metrics").text
    assert "guardproxy_shared_state_degraded 0.0" in metrics


def test_redis_down_each_replica_falls_back_to_its_own_state(
    make_config: ConfigFactory,
    start_proxy: Any,
    upstream: ServerThread,
    redis_server: Any,
    http: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _config(make_config, upstream, redis_server.url)
    a = start_proxy(config)
    _ask(http, a, 1)
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="guardproxy.health_state"):
        _ask(http, a, 2)
        time.sleep(0.5)
        _ask(http, a, FAILURES + 3)  # the local count reaches the limit; then local cooldown
    assert mock_calls(http, upstream, "fail") == FAILURES  # same limit, counted in this process
    assert "guardproxy_shared_state_degraded 1.0" in http.get(a.url + "/metrics").text
    lines = [r.getMessage() for r in caplog.records if r.name == "guardproxy.health_state"]
    assert len(lines) == 1 and "per process" in lines[0], lines  # one line per transition


def test_retry_budget_is_the_fleets(redis_server: Any) -> None:
    """Two processes' budgets: retries spent by one are seen by the other after a tick."""
    asyncio.run(_budget_scenario(redis_server.url))


async def _budget_scenario(url: str) -> None:
    shared = [SharedHealth(url, failures=5, cooldown=30, window=10) for _ in range(2)]
    budgets = [SharedRetryBudget(s, ratio=0.0, minimum=3, window=10) for s in shared]
    try:
        assert all(budgets[0].try_spend() for _ in range(3))
        assert not budgets[0].try_spend()
        assert budgets[1].try_spend()  # before a tick it only knows its own
        await shared[0].tick()
        await shared[1].tick()
        assert shared[1].retries == 4
        assert not budgets[1].try_spend()  # the fleet's 4 retries exceed the minimum of 3
        for _ in range(40):
            budgets[0].record_first()
            budgets[1].record_first()
        budgets[0]._ratio = budgets[1]._ratio = 0.2
        await asyncio.gather(shared[0].tick(), shared[1].tick())
        await shared[0].tick()
        assert shared[0].firsts == 80
        assert budgets[0].try_spend() == (4 < 0.2 * 80)
    finally:
        for s in shared:
            await s.close()


def test_a_reloaded_retry_section_reaches_the_shared_counting(
    make_config: ConfigFactory,
    start_proxy: Any,
    upstream: ServerThread,
    redis_server: Any,
    http: httpx.Client,
) -> None:
    """Hot reload of `retry.cooldown_failures` (4 -> 2): the fleet's state cools after 2 failures, not 4."""
    config = _config(make_config, upstream, redis_server.url)
    a = start_proxy(config)
    edited = yaml.safe_load(config.read_text())
    edited["retry"]["cooldown_failures"] = 2
    config.write_text(yaml.safe_dump(edited, sort_keys=False))
    wait_until(lambda: a.server.config.loaded_app and _reloads(a) >= 1, 10)
    assert _ask(http, a, 6) == [502] * 6
    # 2 calls, or 3 when a tick's read crossed a failure (docs/deploy.md: one call more than the limit);
    # the old limit would have let 4 or 5 through
    assert mock_calls(http, upstream, "fail") in (2, 3)


def _reloads(server: ServerThread) -> int:
    app = server.server.config.loaded_app
    while not hasattr(app, "state"):  # uvicorn wraps the Starlette app in its middleware
        app = app.app
    return int(app.state.reloader.reloads)
