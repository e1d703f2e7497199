"""The contract every cache backend keeps, run against real diskcache/SQLite and a real redis-server.

Backend-specific behaviour (hostile rows, broken storage, Redis killed or stalled) stays in
test_cache_disk.py and test_cache_redis.py.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from proxy.cache import CacheBackend
from proxy.cache.disk import DiskBackend
from proxy.cache.redis_backend import RedisBackend
from tests.helpers import apoll

SECRET = b"test-cache-secret-0123456789"
BIG = 50_000  # above diskcache's 32 KiB threshold: a value file on disk


@dataclass
class Store:
    """One shared store: `open()` gives another backend (another replica) over it."""

    open: Callable[[], CacheBackend]
    garble: Callable[[str], None]  # flip a bit of the stored entry for a key, behind the backend's back
    cpu_per_hit: float  # median CPU seconds one hit may cost


def _flip(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 1])


def _disk(path: Path) -> Store:
    def garble(key: str) -> None:
        with sqlite3.connect(path / "cache.db") as con:
            ((blob,),) = con.execute("SELECT value FROM Cache WHERE key = ?", (f"e:{key}",)).fetchall()
            con.execute("UPDATE Cache SET value = ? WHERE key = ?", (_flip(blob), f"e:{key}"))

    return Store(lambda: DiskBackend(path, size_limit=2**30), garble, cpu_per_hit=200e-6)


def _redis(url: str) -> Store:
    def garble(key: str) -> None:
        with redis.Redis.from_url(url) as plain:
            name = f"guardproxy:e:{key}"
            plain.set(name, _flip(plain.get(name)), keepttl=True)

    # generous: a loopback round trip, measured ~0.1 ms
    return Store(lambda: RedisBackend(url, secret=SECRET), garble, cpu_per_hit=1e-3)


@pytest.fixture(params=["disk", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "disk":
        yield _disk(tmp_path / "c")
    else:
        yield _redis(request.getfixturevalue("redis_server").url)


@pytest.mark.asyncio
async def test_round_trip_miss_ttl_and_counters(store: Store) -> None:
    cache = store.open()
    big = os.urandom(BIG)
    assert await cache.set("small", b"hello", 60)
    assert await cache.set("big", big, 60)
    assert await cache.set("short", b"soon gone", 0.05)
    assert await cache.get("small") == b"hello"
    assert await cache.get("big") == big
    assert await cache.get("absent") is None
    assert (cache.hits, cache.misses, cache.errors) == (2, 1, 0)
    assert await apoll(lambda: _gone(cache, "short"))
    assert cache.errors == 0
    await cache.close()


async def _gone(cache: CacheBackend, key: str) -> bool:
    return await cache.get(key) is None


@pytest.mark.asyncio
async def test_a_garbled_entry_is_a_miss_an_error_and_is_evicted(store: Store) -> None:
    cache = store.open()
    assert await cache.set("k", b'{"answer": 42}', 60)
    store.garble("k")
    assert await cache.get("k") is None
    assert cache.errors == 1
    assert (await cache.stats())["entries"] == 0
    assert await cache.set("k", b'{"answer": 42}', 60)  # and the key works again
    assert await cache.get("k") == b'{"answer": 42}'
    await cache.close()


@pytest.mark.asyncio
async def test_locks_are_exclusive_expire_and_only_the_owner_releases(store: Store) -> None:
    one, two = store.open(), store.open()
    assert await one.try_lock("k", 0.2)
    assert not await two.try_lock("k", 5)
    await two.unlock("k")  # not its lock: no effect
    assert not await two.try_lock("k", 5)
    assert await apoll(lambda: two.try_lock("k", 5), timeout=5)  # the holder died: the lock expires
    await one.unlock("k")  # its lock expired and was retaken: must not free two's
    assert not await one.try_lock("k", 5)
    await two.unlock("k")
    assert await one.try_lock("k", 5)
    await one.close()
    await two.close()


@pytest.mark.asyncio
async def test_stats_count_entries_and_clear_removes_them(store: Store) -> None:
    cache = store.open()
    for i in range(3):
        assert await cache.set(f"k{i}", b"x" * 10, 60)
    stats: dict[str, Any] = await cache.stats()
    assert stats["entries"] == 3 and stats["bytes"] > 30
    assert await cache.clear() == 3
    assert (await cache.stats())["entries"] == 0
    assert await cache.get("k0") is None
    await cache.close()


@pytest.mark.asyncio
async def test_cpu_per_hit(store: Store) -> None:
    cache = store.open()
    value = os.urandom(2000)
    assert await cache.set("k", value, 3600)
    samples = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(200):
            assert await cache.get("k") == value
        samples.append((time.process_time() - started) / 200)
    assert statistics.median(samples) < store.cpu_per_hit, samples
    await cache.close()
