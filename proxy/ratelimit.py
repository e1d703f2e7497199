"""Per-key request (`rpm`) and token (`tpm`) limits: GCRA in process memory, or in Redis so that
several replicas share them; a Redis that fails costs one short timeout, then local limits apply.

GCRA keeps one "theoretical arrival time" (tat) per key and limit. Each request (or token) pushes the
tat forward by `window / limit`; a request is refused while the tat is more than `window` minus one
interval ahead of now, and `retry-after` is exactly the time until it no longer is. Tokens are only
known after the answer, so `spend` adds them afterwards and `admit` refuses while the debt exceeds
the per-minute budget: a request may overdraw, the next ones wait it off.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from .errors import RateLimited

__all__ = ["Limiter", "RateLimiter", "RedisRateLimiter", "open_rate_limiter"]

log = logging.getLogger("guardproxy.ratelimit")
ErrorHook = Callable[[str], None]


class Limiter(Protocol):
    """What the request path calls."""

    async def admit(self, key_name: str, rpm: int | None, tpm: int | None) -> None: ...
    async def spend(self, key_name: str, tokens: int) -> None: ...
    async def close(self) -> None: ...


def _refusal(key_name: str, which: str, limit: int, wait: float) -> RateLimited:
    unit = "requests" if which == "rpm" else "tokens"
    return RateLimited(
        f"Rate limit reached for API key '{key_name}': {limit} {unit} per minute. "
        f"Retry after {max(1, math.ceil(wait))} s.",
        retry_after=max(wait, 0.001),
    )


class RateLimiter:
    """GCRA limits held in this process (one worker); `clock` is injectable for tests."""

    def __init__(self, *, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._tat: dict[tuple[str, str], float] = {}
        self._tpm: dict[str, int] = {}  # the last `tpm` seen per key, for `spend`

    def _debt(self, key: tuple[str, str], now: float) -> float:
        return max(self._tat.get(key, now), now)

    async def admit(self, key_name: str, rpm: int | None, tpm: int | None) -> None:
        """Count one request; raise RateLimited (with retry-after) when over `rpm` or `tpm`."""
        self.check(key_name, rpm, tpm)

    def check(self, key_name: str, rpm: int | None, tpm: int | None) -> None:
        """`admit`, synchronously (no await inside: atomic on the event loop)."""
        now = self._clock()
        waits: list[tuple[float, str, int]] = []
        for which, limit in (("tpm", tpm), ("rpm", rpm)):
            if limit:
                interval = self.window / limit
                over = self._debt((key_name, which), now) - now - (self.window - interval)
                if over > 0:
                    waits.append((over, which, limit))
        if waits:
            wait, which, limit = max(waits)
            raise _refusal(key_name, which, limit, wait)
        if rpm:
            key = (key_name, "rpm")
            self._tat[key] = self._debt(key, now) + self.window / rpm
        if tpm:
            self._tpm[key_name] = tpm

    async def spend(self, key_name: str, tokens: int) -> None:
        """Charge `tokens` (all attempts of one request) to the key's `tpm` budget."""
        self.charge(key_name, tokens)

    def charge(self, key_name: str, tokens: int, tpm: int | None = None) -> None:
        """`spend`, synchronously; `tpm` defaults to the one the last `admit` saw."""
        limit = tpm or self._tpm.get(key_name)
        if not limit or tokens <= 0:
            return
        key = (key_name, "tpm")
        now = self._clock()
        self._tat[key] = self._debt(key, now) + tokens * self.window / limit

    async def close(self) -> None:
        self._tat.clear()
        self._tpm.clear()


# KEYS: rpm tat, tpm tat. ARGV: window, rpm (0: none), tpm (0: none). Returns {ok, wait, which}.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local function tat(key)
  local v = tonumber(redis.call('GET', key) or '0')
  if v < now then return now end
  return v
end
local wait, which = 0, ''
local limits = {{KEYS[2], tonumber(ARGV[3]), 'tpm'}, {KEYS[1], tonumber(ARGV[2]), 'rpm'}}
for _, l in ipairs(limits) do
  if l[2] > 0 then
    local over = tat(l[1]) - now - (window - window / l[2])
    if over > wait then wait, which = over, l[3] end
  end
end
if wait > 0 then return {0, tostring(wait), which} end
local rpm = tonumber(ARGV[2])
if rpm > 0 then
  local new = tat(KEYS[1]) + window / rpm
  redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000) + 1000)
end
return {1, '0', ''}
"""
# KEYS: tpm tat. ARGV: window, tpm, tokens.
_SPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v < now then v = now end
local new = v + tonumber(ARGV[3]) * tonumber(ARGV[1]) / tonumber(ARGV[2])
redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000) + 1000)
return 1
"""


class RedisRateLimiter:
    """The same GCRA in Redis (one Lua script per call, Redis's clock); local limits while it fails."""

    def __init__(
        self,
        url: str,
        *,
        window: float = 60.0,
        op_timeout: float = 0.25,
        backoff: float = 1.0,
        namespace: str = "guardproxy:rl:",
        clock: Callable[[], float] = time.monotonic,
        on_error: ErrorHook | None = None,
    ) -> None:
        # lazily: only replicas sharing limits pay for importing redis
        from .cache.redis_backend import fast_fail_client

        self.window = window
        self.local = RateLimiter(window=window, clock=clock)
        self._clock = clock
        self._backoff = backoff
        self._deadline = 2 * op_timeout
        self._down_until = 0.0
        self._ns = namespace
        self._on_error = on_error
        self._tpm: dict[str, int] = {}
        self.errors = 0
        self._client: Any = fast_fail_client(url, op_timeout)
        self._admit = self._client.register_script(_ADMIT)
        self._spend = self._client.register_script(_SPEND)

    def _keys(self, key_name: str) -> list[str]:
        return [f"{self._ns}{key_name}:rpm", f"{self._ns}{key_name}:tpm"]

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's reply, or None when Redis is down (the caller falls back to local limits)."""
        if self._clock() < self._down_until:
            return None
        try:
            return await asyncio.wait_for(script(keys=keys, args=args), self._deadline)
        except Exception as exc:  # noqa: BLE001 - any Redis failure: local limits, never a 500
            self.errors += 1
            self._down_until = self._clock() + self._backoff
            log.warning("rate limits fall back to this process: redis %s", type(exc).__name__)
            if self._on_error is not None:
                self._on_error(type(exc).__name__)
            return None

    async def admit(self, key_name: str, rpm: int | None, tpm: int | None) -> None:
        """Count one request in Redis; raise RateLimited when over; local limits if Redis fails."""
        if not rpm and not tpm:
            return
        if tpm:
            self._tpm[key_name] = tpm
        reply = await self._run(self._admit, self._keys(key_name), [self.window, rpm or 0, tpm or 0])
        if reply is None:
            self.local.check(key_name, rpm, tpm)
            return
        ok, wait, which = int(reply[0]), float(reply[1]), _text(reply[2])
        if not ok:
            raise _refusal(key_name, which, (rpm if which == "rpm" else tpm) or 0, wait)

    async def spend(self, key_name: str, tokens: int) -> None:
        """Charge `tokens` to the key's shared `tpm` budget (the local one while Redis fails)."""
        tpm = self._tpm.get(key_name)
        if not tpm or tokens <= 0:
            return
        if await self._run(self._spend, self._keys(key_name)[1:], [self.window, tpm, tokens]) is None:
            self.local.charge(key_name, tokens, tpm)

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except Exception:  # noqa: BLE001 - closing a broken connection is not an error
            pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def open_rate_limiter(
    backend: str, url: str, *, on_error: ErrorHook | None = None
) -> RateLimiter | RedisRateLimiter:
    """Redis-backed limits when the cache backend is Redis (replicas share them), else in-process."""
    if backend == "redis":
        return RedisRateLimiter(url, on_error=on_error)
    return RateLimiter()
