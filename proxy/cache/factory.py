"""Open the configured backend, and the `guardproxy cache stats|clear|prune` operations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proxy.cache.backend import CacheBackend, ErrorHook, NoCache

__all__ = ["BACKENDS", "REDIS_NEEDS_SECRET", "cache_clear", "cache_prune", "cache_stats", "open_backend"]

BACKENDS = ("disk", "redis", "none")
REDIS_NEEDS_SECRET = (
    "cache.secret is required with cache.backend redis: every replica signs and checks entries with it"
    " (e.g. secret: ${GUARDPROXY_CACHE_SECRET}, at least 16 characters, the same on every replica)"
)


def open_backend(
    backend: str,
    *,
    path: Path,
    url: str,
    size_limit_mb: int,
    secret: str | None = None,
    on_error: ErrorHook | None = None,
) -> CacheBackend:
    """Return the backend named by `cache.backend`; it never raises once open.

    `secret` (`cache.secret`) signs every entry. Unset, the disk backend generates one into its folder;
    Redis refuses (ValueError): replicas must share the secret, and nothing they share is secret enough
    to derive it from. Settings validation reports the same problem earlier, with the file and line.
    """
    key = None if secret is None else secret.encode()
    if backend == "disk":
        from proxy.cache.disk import DiskBackend

        return DiskBackend(path, size_limit=size_limit_mb * 2**20, on_error=on_error, secret=key)
    if backend == "redis":
        from proxy.cache.redis_backend import RedisBackend  # imported lazily: redis costs ~0.2 s

        if key is None:
            raise ValueError(REDIS_NEEDS_SECRET)
        return RedisBackend(url, secret=key, on_error=on_error)
    if backend == "none":
        return NoCache()
    raise ValueError(f"unknown cache backend {backend!r} (expected one of {', '.join(BACKENDS)})")


async def cache_stats(backend: CacheBackend) -> dict[str, Any]:
    """Entries, bytes and this process's hit ratio (null when nothing was looked up)."""
    stats = await backend.stats()
    hits, misses = int(stats.get("hits", 0)), int(stats.get("misses", 0))
    stats["hit_ratio"] = round(hits / (hits + misses), 4) if hits + misses else None
    return stats


async def cache_clear(backend: CacheBackend) -> int:
    """Remove every entry; return how many."""
    return await backend.clear()


async def cache_prune(backend: CacheBackend) -> int:
    """Drop expired entries; return how many."""
    return await backend.prune()
