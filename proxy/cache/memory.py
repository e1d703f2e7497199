"""The in-memory tier: a bounded, per-process copy of hot entries in front of the disk or Redis backend.

- `get` answers from memory while the copy is younger than `ttl` (`cache.memory_ttl`, 1 s by default);
  after that it reads the backend again (the entry there stays HMAC-verified on every read), and keeps
  the copy, with whatever was derived from it (`HotEntry.memo`), when the backend still holds the same
  bytes. So `guardproxy cache clear`, a tombstone written by negative feedback, an expiry or a write by
  another process reach this process within `ttl`; this process's own writes and clears at once. Policy
  and alias edits change the key itself (`cache_key`), so they never meet an old copy.
- Bounded by `max_bytes` (`cache.memory_mb`): least recently used copies go first. A value larger than
  a sixteenth of the budget is never copied.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from proxy.cache.backend import CacheBackend

__all__ = ["HotEntry", "MemoryTier"]

_OVERHEAD = 256  # bytes counted per copy on top of its value (the key, the entry, the LRU links)
_RENDERINGS = 4  # the payload, plus room for what is derived from it (a JSON body, SSE renderings)


class HotEntry:
    """One copy: the stored payload, until when it may be served without asking the backend, and what
    callers derived from it (`memo`: e.g. a rendered response), dropped with the copy."""

    __slots__ = ("fresh_until", "memo", "payload", "size")

    def __init__(self, payload: bytes, fresh_until: float) -> None:
        self.payload = payload
        self.fresh_until = fresh_until
        self.memo: dict[Any, Any] = {}
        self.size = _RENDERINGS * len(payload) + _OVERHEAD


class MemoryTier:
    """A `CacheBackend` that keeps recently read or written entries of `backend` in memory."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        max_bytes: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.name = backend.name
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.used = 0
        self.memory_hits = 0
        self._clock = clock
        self._entries: OrderedDict[str, HotEntry] = OrderedDict()

    @property
    def errors(self) -> int:
        """The backend's swallowed errors."""
        return self.backend.errors

    def peek(self, key: str) -> HotEntry | None:
        """The copy of `key` while it is fresh, else None (no I/O: the caller goes the full way)."""
        entry = self._entries.get(key)
        if entry is None or entry.fresh_until <= self._clock():
            return None
        self._entries.move_to_end(key)
        self.memory_hits += 1
        return entry

    async def get(self, key: str) -> bytes | None:
        """The fresh copy's payload, else the backend's (kept in memory for `ttl`)."""
        entry = self.peek(key)
        if entry is not None:
            return entry.payload
        payload = await self.backend.get(key)
        if payload is None:
            self._drop(key)
            return None
        entry = self._entries.get(key)
        if entry is not None and entry.payload == payload:  # unchanged: keep what was derived from it
            entry.fresh_until = self._clock() + self.ttl
            self._entries.move_to_end(key)
        else:
            self._keep(key, payload)
        return payload

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        """Write through; the copy is replaced at once (or dropped when the write failed)."""
        stored = await self.backend.set(key, value, ttl)
        if stored and ttl > 0:
            self._keep(key, value)
        else:
            self._drop(key)
        return stored

    async def try_lock(self, key: str, ttl: float) -> bool:
        """The backend's lock."""
        return await self.backend.try_lock(key, ttl)

    async def unlock(self, key: str) -> None:
        """The backend's unlock."""
        await self.backend.unlock(key)

    async def stats(self) -> dict[str, Any]:
        """The backend's figures, plus the memory tier's."""
        stats = await self.backend.stats()
        stats["memory"] = {
            "entries": len(self._entries),
            "bytes": self.used,
            "max_bytes": self.max_bytes,
            "ttl": self.ttl,
            "hits": self.memory_hits,
        }
        return stats

    async def clear(self) -> int:
        """Forget every copy, then clear the backend."""
        self._entries.clear()
        self.used = 0
        return await self.backend.clear()

    async def prune(self) -> int:
        """The backend's prune (copies expire on their own within `ttl`)."""
        return await self.backend.prune()

    async def close(self) -> None:
        """Forget every copy and close the backend."""
        self._entries.clear()
        self.used = 0
        await self.backend.close()

    def _keep(self, key: str, payload: bytes) -> None:
        self._drop(key)
        entry = HotEntry(payload, self._clock() + self.ttl)
        if entry.size * 16 > self.max_bytes:
            return
        self._entries[key] = entry
        self.used += entry.size
        while self.used > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.used -= old.size

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.used -= entry.size
