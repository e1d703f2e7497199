"""The `redis` backend: one cache shared by several replicas, degrading to a miss when Redis is not there.

- redis-py asyncio with short socket timeouts (`op_timeout`, 0.25 s by default) and no client retries:
  a dead or stalled Redis costs at most one timeout, then the backend skips Redis entirely for
  `backoff` seconds (every call a miss / skipped write / granted lock, no network), then tries again.
- Entries: ``SET <ns>e:<key> <sealed value> PX ttl``; locks: ``SET <ns>l:<key> <token> NX PX ttl``,
  released by a compare-and-delete script so a leader never frees a lock that expired and was retaken.
- Values carry the same signed envelope as the disk backend (HMAC-SHA256 over key and value with
  `cache.secret`, which every replica must share); a forged, altered, moved or garbled value is a
  miss, is reported as op ``tampered`` and is deleted (compare-and-delete: a valid value stored
  meanwhile by another replica survives).
- Server-side errors on one command (OOM under `noeviction`, NOPERM, READONLY) are counted but do not
  trigger the back-off: reads may still work while writes are refused.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from proxy.cache.backend import ErrorHook, ErrorLog
from proxy.cache.envelope import Sealer, TamperedEntry

__all__ = ["RedisBackend", "fast_fail_client"]

_T = TypeVar("_T")
_DELETE_IF = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def fast_fail_client(url: str, op_timeout: float) -> Any:
    """A Redis client that fails fast instead of waiting: `op_timeout` per connect and per command, no
    retries, no health-check pings. Every Redis user here (cache, limits, shared health) degrades to
    local state on a failure rather than holding the request."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=op_timeout,
        socket_connect_timeout=op_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RedisBackend:
    """Redis-backed `CacheBackend`; every failure is a miss, a skipped write or a granted lock."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        secret: bytes,
        on_error: ErrorHook | None = None,
        op_timeout: float = 0.25,
        backoff: float = 1.0,
        namespace: str = "guardproxy:",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hits = 0
        self.misses = 0
        self.skipped = 0
        self._sealer = Sealer(secret)
        self._log = ErrorLog("redis", on_error)
        self._backoff = backoff
        self._deadline = 2 * op_timeout  # connect + one command, a hard cap on top of the socket timeouts
        self._clock = clock
        self._down_until = 0.0
        self._entry = namespace + "e:"
        self._lock = namespace + "l:"
        self._locks: dict[str, bytes] = {}
        self._client = fast_fail_client(url, op_timeout)

    @property
    def errors(self) -> int:
        """Count of swallowed errors."""
        return self._log.count

    @property
    def available(self) -> bool:
        """False while the backend is backing off after a connection error."""
        return self._clock() >= self._down_until

    async def get(self, key: str) -> bytes | None:
        """Return the payload stored under `key`, or None (miss, corrupt, Redis down or slow)."""
        raw = await self._call("get", lambda: self._client.get(self._entry + key), None)
        if raw is None:
            self.misses += 1
            return None
        data = raw.encode() if isinstance(raw, str) else raw
        opened = self._sealer.unseal(key, data)
        if opened is None:
            self.misses += 1
            self._log.record("tampered", TamperedEntry("cache entry fails authentication"))
            await self._call("evict", lambda: self._delete_if(self._entry + key, data), 0)
            return None
        self.hits += 1
        return opened[0]

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        """``SET key value PX ttl``; False when skipped or refused."""
        sealed = self._sealer.seal(key, value, time.time())
        done = await self._call("set", lambda: self._client.set(self._entry + key, sealed, px=_ms(ttl)), None)
        return bool(done)

    async def try_lock(self, key: str, ttl: float) -> bool:
        """``SET lock token NX PX ttl``; an unreachable Redis grants the lock (nothing to wait for)."""
        token = uuid.uuid4().bytes
        unknown = object()
        got = await self._call(
            "lock", lambda: self._client.set(self._lock + key, token, nx=True, px=_ms(ttl)), unknown
        )
        if got is unknown:
            return True
        if got:
            self._locks[key] = token
        return bool(got)

    async def unlock(self, key: str) -> None:
        """Delete our lock if it still holds our token."""
        token = self._locks.pop(key, None)
        if token is not None:
            await self._call("unlock", lambda: self._delete_if(self._lock + key, token), 0)

    async def stats(self) -> dict[str, Any]:
        """Entries and value bytes under our namespace (a SCAN), this process's hits/misses/errors."""
        entries = size = 0
        result: dict[str, Any] = {"backend": "redis", "hits": self.hits, "misses": self.misses}
        try:
            async for batch in self._batches(self._entry + "*"):
                entries += len(batch)
                pipe = self._client.pipeline(transaction=False)
                for name in batch:
                    pipe.strlen(name)
                size += sum(int(n) for n in await pipe.execute())
            result["available"] = True
        except Exception as exc:
            self._log.record("stats", exc)
            result.update(available=False, error=f"{type(exc).__name__}: {exc}")
        result.update(entries=entries, bytes=size, errors=self.errors, skipped=self.skipped)
        return result

    async def clear(self) -> int:
        """UNLINK every entry and lock under our namespace (never FLUSHDB: the database may be shared)."""
        removed = 0
        try:
            for pattern in (self._entry + "*", self._lock + "*"):
                async for batch in self._batches(pattern):
                    removed += int(await self._client.unlink(*batch))
        except Exception as exc:
            self._log.record("clear", exc)
        return removed

    async def prune(self) -> int:
        """Nothing to do: Redis expires entries itself."""
        return 0

    async def close(self) -> None:
        """Close the connection pool."""
        try:
            await self._client.aclose()
        except Exception as exc:
            self._log.record("close", exc)

    async def _delete_if(self, name: str, value: bytes) -> Any:
        return await self._client.eval(_DELETE_IF, 1, name, value)

    async def _batches(self, pattern: str) -> AsyncIterator[list[Any]]:
        cursor = 0
        while True:
            cursor, names = await self._client.scan(cursor=cursor, match=pattern, count=500)
            if names:
                yield names
            if cursor == 0:
                return

    async def _call(self, op: str, command: Callable[[], Awaitable[_T]], default: _T) -> _T:
        """Run one command under a hard deadline; on failure record it and return `default`."""
        if self._clock() < self._down_until:
            self.skipped += 1
            return default
        try:
            async with asyncio.timeout(self._deadline):
                return await command()
        except ResponseError as exc:
            self._log.record(op, exc)
        except Exception as exc:  # connection refused/reset, timeouts, protocol errors: back off
            self._down_until = self._clock() + self._backoff
            self._log.record(op, exc)
        return default
