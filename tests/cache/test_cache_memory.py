"""The memory tier in front of a real disk backend: what it serves, and when it asks the backend again."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from proxy.cache.disk import DiskBackend
from proxy.cache.memory import MemoryTier

SECRET = b"test-cache-secret-0123456789"
TTL = 1.0

pytestmark = pytest.mark.asyncio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def pair(tmp_path: Path):
    """A tier over one disk backend, and a second backend on the same folder (another process)."""
    clock = Clock()
    tier = MemoryTier(
        DiskBackend(tmp_path, size_limit=2**24, secret=SECRET), max_bytes=2**20, ttl=TTL, clock=clock
    )
    other = DiskBackend(tmp_path, size_limit=2**24, secret=SECRET)
    yield tier, other, clock
    await tier.close()
    await other.close()


async def test_a_fresh_copy_is_served_and_others_writes_arrive_within_the_ttl(pair) -> None:
    tier, other, clock = pair
    assert await tier.set("k", b"one", 60)
    assert await other.set("k", b"two", 60)  # another process replaces it
    assert await tier.get("k") == b"one"  # the copy is fresh
    clock.now += TTL
    assert await tier.get("k") == b"two"
    await other.clear()  # `guardproxy cache clear` elsewhere
    assert await tier.get("k") == b"two"
    clock.now += TTL
    assert await tier.get("k") is None and tier.peek("k") is None


async def test_an_unchanged_entry_keeps_what_was_derived_from_it(pair) -> None:
    tier, other, clock = pair
    await tier.set("k", b"same", 60)
    entry = tier.peek("k")
    assert entry is not None
    entry.memo["rendered"] = b"body"
    clock.now += TTL
    assert tier.peek("k") is None  # stale: the caller must go to the backend
    assert await tier.get("k") == b"same"
    again = tier.peek("k")
    assert again is entry and again.memo == {"rendered": b"body"}
    await other.set("k", b"changed", 60)
    clock.now += TTL
    assert await tier.get("k") == b"changed"
    changed = tier.peek("k")
    assert changed is not None and changed.memo == {}


async def test_own_writes_and_clears_apply_at_once(pair) -> None:
    tier, _, _ = pair
    await tier.set("k", b"answer", 60)
    await tier.set("k", b"tombstone", 60)  # negative feedback in this process
    assert await tier.get("k") == b"tombstone"
    assert await tier.clear() == 1
    assert tier.peek("k") is None and await tier.get("k") is None


async def test_memory_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    backend = DiskBackend(tmp_path, size_limit=2**24, secret=SECRET)
    tier = MemoryTier(backend, max_bytes=64 * 1024, ttl=TTL)
    try:
        for i in range(40):
            await tier.set(f"k{i}", bytes(900), 60)
            assert tier.peek("k0") is not None  # kept in use: never the one to go
        assert tier.used <= tier.max_bytes
        assert tier.peek("k1") is None and tier.peek("k39") is not None
        assert await tier.get("k1") == bytes(900)  # still on disk
        await tier.set("huge", bytes(8 * 1024), 60)  # over a sixteenth of the budget: disk only
        assert tier.peek("huge") is None and await backend.get("huge") == bytes(8 * 1024)
        stats = await tier.stats()
        assert stats["entries"] == 41 and stats["memory"]["bytes"] == tier.used
    finally:
        await tier.close()
