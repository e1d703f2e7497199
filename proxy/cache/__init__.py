"""Caching of validated answers: backends (disk, redis, none), the key, single-flight, the entry format.

Only this package imports diskcache and redis; `RedisBackend` is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proxy.cache.backend import CacheBackend, ErrorHook, NoCache
from proxy.cache.entry import CachedAnswer, decode_entry, encode_entry
from proxy.cache.factory import BACKENDS, cache_clear, cache_prune, cache_stats, open_backend
from proxy.cache.key import EXCLUDED_FIELDS, cache_key, canonical_json
from proxy.cache.singleflight import SingleFlight

if TYPE_CHECKING:
    from proxy.cache.disk import DiskBackend
    from proxy.cache.redis_backend import RedisBackend

__all__ = [
    "BACKENDS",
    "CacheBackend",
    "CachedAnswer",
    "DiskBackend",
    "EXCLUDED_FIELDS",
    "ErrorHook",
    "NoCache",
    "RedisBackend",
    "SingleFlight",
    "cache_clear",
    "cache_key",
    "cache_prune",
    "cache_stats",
    "canonical_json",
    "decode_entry",
    "encode_entry",
    "open_backend",
]


def __getattr__(name: str) -> Any:
    """Load the backend classes on first use (redis alone takes ~0.2 s to import)."""
    if name == "DiskBackend":
        from proxy.cache.disk import DiskBackend

        return DiskBackend
    if name == "RedisBackend":
        from proxy.cache.redis_backend import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
