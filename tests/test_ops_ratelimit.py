"""Per-key rpm/tpm limits: 429 with retry-after, per key, shared by two app instances on one Redis."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from proxy.errors import RateLimited
from proxy.ratelimit import RateLimiter, RedisRateLimiter
from tests.servers import free_port

KEYS = [
    {"name": "slow", "key": "sk-rl-slow-0001", "rpm": 2},
    {"name": "thrifty", "key": "sk-rl-thrifty-01", "tpm": 5},
    {"name": "free", "key": "sk-rl-free-00001"},
    {"name": "ops", "key": "sk-rl-ops-000001", "admin": True},  # reads /metrics
]


def ask(proxy, key, text="hello"):
    return httpx.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {key}", "cache-control": "no-store"},
        timeout=20,
    )


def assert_429(r):
    assert r.status_code == 429, r.text
    err = r.json()["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    assert int(r.headers["retry-after"]) >= 1 and int(r.headers["retry-after-ms"]) > 0
    assert r.headers["x-request-id"]
    return err


@pytest.fixture
def config(make_config):
    def build(**cache):
        return make_config({"echo": {"deployments": [{"model": "mock/echo"}]}}, auth={"keys": KEYS}, **cache)

    return build


def test_rpm_per_key(config, start_proxy):
    proxy = start_proxy(config())
    assert [ask(proxy, "sk-rl-slow-0001").status_code for _ in range(2)] == [200, 200]
    err = assert_429(ask(proxy, "sk-rl-slow-0001"))
    assert "2 requests per minute" in err["message"] and "sk-rl-slow" not in err["message"]
    assert 25 <= int(ask(proxy, "sk-rl-slow-0001").headers["retry-after"]) <= 31  # one slot per 30 s
    assert all(ask(proxy, "sk-rl-free-00001").status_code == 200 for _ in range(4))  # other keys unaffected
    metrics = httpx.get(proxy.url + "/metrics", headers={"authorization": "Bearer sk-rl-ops-000001"}).text
    metrics = metrics.splitlines()
    limited = [m for m in metrics if m.startswith("guardproxy_requests_total{") and 'status="429"' in m]
    assert sum(float(m.rsplit(" ", 1)[1]) for m in limited) == 2


def test_tpm_counts_tokens_of_every_attempt(config, start_proxy):
    proxy = start_proxy(config())
    first = ask(proxy, "sk-rl-thrifty-01", "a message long enough to spend more than five tokens")
    assert first.status_code == 200 and int(first.headers["x-guardproxy-total-tokens"]) > 5
    err = assert_429(ask(proxy, "sk-rl-thrifty-01"))
    assert "5 tokens per minute" in err["message"]
    assert ask(proxy, "sk-rl-slow-0001").status_code == 200


@pytest.mark.redis
def test_limits_shared_by_two_replicas_on_redis(config, start_proxy, redis_server):
    path = config(cache={"backend": "redis", "url": redis_server.url, "secret": "x" * 16})
    first, second = start_proxy(path), start_proxy(path)
    assert ask(first, "sk-rl-slow-0001").status_code == 200
    assert ask(second, "sk-rl-slow-0001").status_code == 200
    assert_429(ask(first, "sk-rl-slow-0001"))
    assert_429(ask(second, "sk-rl-slow-0001"))
    spent = ask(second, "sk-rl-thrifty-01", "enough words to spend more than five tokens at once")
    assert spent.status_code == 200
    assert_429(ask(first, "sk-rl-thrifty-01"))  # tokens spent on one replica count on the other


@pytest.mark.redis
def test_redis_down_falls_back_to_local_limits(config, start_proxy, redis_server):
    proxy = start_proxy(config(cache={"backend": "redis", "url": redis_server.url, "secret": "x" * 16}))
    assert ask(proxy, "sk-rl-free-00001").status_code == 200
    redis_server.kill()
    statuses = [ask(proxy, "sk-rl-slow-0001").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # never a 500; this process enforces the limit alone


def test_gcra_with_injected_clock():
    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])

    async def run():
        for _ in range(3):
            await limiter.admit("k", 3, None)
        with pytest.raises(RateLimited) as refused:
            await limiter.admit("k", 3, None)
        assert refused.value.retry_after == pytest.approx(20.0)
        now[0] += 19.9
        with pytest.raises(RateLimited):
            await limiter.admit("k", 3, None)
        now[0] += 0.2
        await limiter.admit("k", 3, None)  # one slot back after 60/3 s
        await limiter.admit("other", 3, None)

        await limiter.admit("t", None, 100)
        await limiter.spend("t", 250)  # overdraws: the next requests wait it off
        with pytest.raises(RateLimited) as refused:
            await limiter.admit("t", None, 100)
        assert refused.value.retry_after == pytest.approx(250 * 0.6 - (60 - 0.6))
        now[0] += 90.7
        await limiter.admit("t", None, 100)

    asyncio.run(run())


def test_no_limits_configured_admits_everything():
    limiter = RateLimiter(clock=lambda: 0.0)

    async def run():
        for _ in range(1000):
            await limiter.admit("k", None, None)
            await limiter.spend("k", 10**6)

    asyncio.run(run())


def test_redis_limiter_unreachable_uses_local_limits():
    now = [0.0]
    errors: list[str] = []
    limiter = RedisRateLimiter(
        f"redis://127.0.0.1:{free_port()}/0", op_timeout=0.1, clock=lambda: now[0], on_error=errors.append
    )

    async def run():
        await limiter.admit("k", 1, None)
        with pytest.raises(RateLimited):
            await limiter.admit("k", 1, None)
        await limiter.close()

    asyncio.run(run())
    assert limiter.errors == 1 and len(errors) == 1  # backs off: one failed call, not one per request
