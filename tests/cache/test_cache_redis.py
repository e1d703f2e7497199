"""The Redis backend against a real redis-server: Redis killed, stalled or out of memory (the shared
contract is test_cache_backends.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from proxy.cache import SingleFlight, open_backend
from proxy.cache.redis_backend import RedisBackend
from tests.helpers import apoll

pytestmark = pytest.mark.redis
SECRET = b"test-cache-secret-0123456789"


def raw_client(server: Any) -> redis.Redis:
    return redis.Redis.from_url(server.url)


@pytest.mark.asyncio
async def test_entries_carry_their_ttl_in_a_namespace_clear_leaves_alone(redis_server: Any) -> None:
    cache = RedisBackend(redis_server.url, secret=SECRET)
    assert await cache.set("k", b"value", 60)
    plain = raw_client(redis_server)
    assert 59_000 < plain.pttl("guardproxy:e:k") <= 60_000
    plain.set("someone-else", b"keep me")
    assert (await cache.stats())["entries"] == 1
    assert await cache.clear() == 1
    assert plain.get("someone-else") == b"keep me"  # never FLUSHDB: the database may be shared
    plain.close()
    await cache.close()


@pytest.mark.asyncio
async def test_redis_killed_mid_run_degrades_fast_and_recovers(redis_server: Any) -> None:
    errors: list[str] = []
    cache = RedisBackend(
        redis_server.url, secret=SECRET, backoff=0.5, on_error=lambda op, exc: errors.append(op)
    )
    assert await cache.set("k", b"before", 60)
    redis_server.kill()
    started = time.monotonic()
    assert await cache.get("k") is None
    assert await cache.set("k2", b"v", 60) is False
    assert await cache.try_lock("l", 5) is True  # nothing to wait for
    await cache.unlock("l")
    assert time.monotonic() - started < 1.0
    assert errors == ["get"] and not cache.available  # one error, then the back-off skips Redis
    skipped = time.monotonic()
    for _ in range(100):
        assert await cache.get("k") is None
    assert time.monotonic() - skipped < 0.5 and cache.skipped >= 100
    redis_server.start()  # same port, empty (no persistence)
    assert await apoll(lambda: cache.set("k", b"after", 60), timeout=5)  # once the back-off is over
    assert await cache.get("k") == b"after"
    await cache.close()


@pytest.mark.asyncio
async def test_a_stalled_redis_costs_one_timeout_then_nothing(redis_server: Any) -> None:
    cache = RedisBackend(redis_server.url, secret=SECRET, op_timeout=0.1, backoff=0.5)
    assert await cache.set("k", b"v", 60)
    redis_server.pause()
    try:
        started = time.monotonic()
        assert await cache.get("k") is None
        assert time.monotonic() - started < 0.8
        started = time.monotonic()
        assert await cache.get("k") is None
        assert await cache.set("k", b"w", 60) is False
        assert time.monotonic() - started < 0.05  # backing off: no network at all
    finally:
        redis_server.resume()
    assert await apoll(lambda: _holds(cache, "k", b"v"), timeout=5)  # once the back-off is over
    await cache.close()


@pytest.mark.asyncio
async def test_out_of_memory_refuses_writes_but_reads_keep_working(redis_server: Any) -> None:
    cache = RedisBackend(redis_server.url, secret=SECRET)
    assert await cache.set("k", b"v", 60)
    plain = raw_client(redis_server)
    plain.config_set("maxmemory-policy", "noeviction")
    plain.config_set("maxmemory", 1)
    assert await cache.set("k2", b"w" * 1000, 60) is False
    assert cache.available  # a refused command is not an outage: no back-off
    assert await cache.get("k") == b"v"
    plain.config_set("maxmemory", 0)
    plain.close()
    await cache.close()


@pytest.mark.asyncio
async def test_nothing_listening_at_start_is_a_fast_miss() -> None:
    cache = open_backend("redis", path=None, url="redis://127.0.0.1:1/0", size_limit_mb=1, secret="s" * 16)  # type: ignore[arg-type]
    started = time.monotonic()
    assert await cache.get("k") is None
    assert await cache.set("k", b"v", 1) is False
    assert (await cache.stats())["available"] is False
    assert time.monotonic() - started < 1.0 and cache.errors >= 1
    await cache.close()


@pytest.mark.asyncio
async def test_single_flight_across_two_replicas_sharing_redis(redis_server: Any) -> None:
    calls = 0
    replicas = [RedisBackend(redis_server.url, secret=SECRET) for _ in range(2)]
    flights = [SingleFlight(backend, poll_interval=0.02) for backend in replicas]

    async def request(index: int) -> bytes:
        backend, flight = replicas[index % 2], flights[index % 2]

        async def produce() -> bytes:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)
            await backend.set("answer", b"42", 60)
            return b"42"

        return await flight.run("answer", produce, lookup=lambda: backend.get("answer"), wait=5)

    assert await asyncio.gather(*(request(i) for i in range(50))) == [b"42"] * 50
    assert calls == 1
    for backend in replicas:
        await backend.close()


async def _holds(cache: RedisBackend, key: str, value: bytes) -> bool:
    return await cache.get(key) == value
