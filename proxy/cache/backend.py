"""The cache backend protocol, the `none` backend and the shared error accounting.

Every backend turns its own failures into a miss (`get` -> None), a skipped write (`set` -> False) or a
no-op, counts them in `errors`, reports each to `on_error(op, exc)` (for metrics) and logs the first
of each kind at WARNING (later ones at DEBUG), so a broken cache never fails or floods a request path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["CacheBackend", "ErrorHook", "ErrorLog", "NoCache"]

_log = logging.getLogger("guardproxy.cache")

ErrorHook = Callable[[str, BaseException], None]


@runtime_checkable
class CacheBackend(Protocol):
    """Byte storage with TTL, a cross-process lock, and admin operations; never raises."""

    name: str

    @property
    def errors(self) -> int:
        """Count of swallowed errors since the backend was opened."""
        ...

    async def get(self, key: str) -> bytes | None:
        """Return the stored bytes, or None on a miss or any error."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        """Store `value` for `ttl` seconds; False when the write was skipped or failed."""
        ...

    async def try_lock(self, key: str, ttl: float) -> bool:
        """Take the single-flight lock; False only when another holder definitely has it."""
        ...

    async def unlock(self, key: str) -> None:
        """Release a lock this backend instance took (no-op otherwise)."""
        ...

    async def stats(self) -> dict[str, Any]:
        """Entries, bytes, hits, misses, errors and backend details."""
        ...

    async def clear(self) -> int:
        """Remove every entry; return how many were removed."""
        ...

    async def prune(self) -> int:
        """Drop expired entries; return how many were removed."""
        ...

    async def close(self) -> None:
        """Release connections, threads and files."""
        ...


class ErrorLog:
    """Counts swallowed backend errors, reports each to a hook, logs the first of each kind."""

    def __init__(self, backend: str, on_error: ErrorHook | None) -> None:
        self.backend = backend
        self.count = 0
        self._on_error = on_error
        self._seen: set[tuple[str, str]] = set()

    def record(self, op: str, exc: BaseException) -> None:
        """Count and report one swallowed error from operation `op`."""
        self.count += 1
        kind = (op, type(exc).__name__)
        level = logging.DEBUG if kind in self._seen else logging.WARNING
        self._seen.add(kind)
        _log.log(level, "cache %s: %s failed, treated as a miss: %s: %s", self.backend, op, kind[1], exc)
        if self._on_error is not None:
            try:
                self._on_error(op, exc)
            except Exception:  # a metrics hook must never break the cache path
                _log.exception("cache on_error hook failed")


class NoCache:
    """The `none` backend: every read misses, every write is skipped, every lock is granted."""

    name = "none"

    @property
    def errors(self) -> int:
        """Always 0: nothing can fail."""
        return 0

    async def get(self, key: str) -> bytes | None:
        """Always a miss."""
        return None

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        """Never stores."""
        return False

    async def try_lock(self, key: str, ttl: float) -> bool:
        """Always granted: there is nothing to coordinate through."""
        return True

    async def unlock(self, key: str) -> None:
        """Nothing to release."""

    async def stats(self) -> dict[str, Any]:
        """An empty cache."""
        return {"backend": "none", "entries": 0, "bytes": 0, "hits": 0, "misses": 0, "errors": 0}

    async def clear(self) -> int:
        """Nothing to remove."""
        return 0

    async def prune(self) -> int:
        """Nothing to remove."""
        return 0

    async def close(self) -> None:
        """Nothing to close."""
