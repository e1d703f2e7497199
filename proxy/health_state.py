"""Deployment health shared by every replica through Redis: cooldowns and the retry budget.

With `cache.backend: redis`, `shared_resilience` gives the `Resilience` a `SharedCooldowns` and a
`SharedRetryBudget`: the same synchronous interface as `proxy.resilience.Cooldowns` / `RetryBudget`,
so the request path never waits on Redis. Decisions read a mirror of the fleet's state; one background
task per process keeps it fresh with one Lua call per tick (`interval`, 0.1 s, and at once after a
failure or success is reported):

- cooldowns: failures are counted across replicas (`INCR`); at `retry.cooldown_failures` in total the
  deployment cools for everyone (`SET ... PX cooldown`); when that expires, one replica that has a
  request waiting takes the fleet's single probe (`SET NX PX`), and its request is the probe;
- retry budget: first attempts and retries are counted in one-second buckets; the window is their sum
  over `retry.budget_window` seconds, this process's counts since the last tick added.

Every decision also feeds the in-process state these classes inherit. When Redis fails, each process
uses that local state (`guardproxy_shared_state_degraded` is 1, one log line per transition), and
tries Redis again after a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from .errors import UpstreamRejected
from .resilience import Clock, Cooldowns, Resilience, RetryBudget
from .settings import Settings

__all__ = [
    "SharedCooldowns",
    "SharedHealth",
    "SharedRetryBudget",
    "close_shared",
    "export_metrics",
    "shared_resilience",
]

log = logging.getLogger("guardproxy.health_state")

# ARGV: ns, me, window, firsts, retries, limit, cool_ms, probe_ms, fails_ttl_ms, n_ops,
#       then n_ops pairs (op, key), then pairs (key, want_probe) to read back.
# Returns {firsts_in_window, retries_in_window, then per key {fails, until_pttl, probe, claimed}}
# (probe: 0 none, 1 this process's, 2 another's)
_TICK = """
local ns, me = ARGV[1], ARGV[2]
local window = tonumber(ARGV[3])
local limit, cool_ms = tonumber(ARGV[6]), tonumber(ARGV[7])
local probe_ms, fails_ttl = tonumber(ARGV[8]), tonumber(ARGV[9])
local sec = tonumber(redis.call('TIME')[1])
local function add(kind, n)
  if n > 0 then
    local k = ns .. 'b:' .. kind .. ':' .. sec
    redis.call('INCRBY', k, n)
    redis.call('EXPIRE', k, window + 2)
  end
end
add('f', tonumber(ARGV[4]))
add('r', tonumber(ARGV[5]))
local function sum(kind)
  local names = {}
  for s = sec - window + 1, sec do names[#names + 1] = ns .. 'b:' .. kind .. ':' .. s end
  local total = 0
  for _, v in ipairs(redis.call('MGET', unpack(names))) do total = total + (tonumber(v) or 0) end
  return total
end
local i = 11
for _ = 1, tonumber(ARGV[10]) do
  local op, key = ARGV[i], ns .. 'cd:' .. ARGV[i + 1]
  i = i + 2
  local mine = redis.call('GET', key .. ':probe') == me
  if op == 'f' then
    local c = redis.call('INCR', key .. ':fails')
    redis.call('PEXPIRE', key .. ':fails', fails_ttl)
    if c >= limit or mine then redis.call('SET', key .. ':until', '1', 'PX', cool_ms) end
    if mine then redis.call('DEL', key .. ':probe') end
  elseif op == 's' then
    redis.call('DEL', key .. ':fails', key .. ':until', key .. ':probe')
  elseif mine then  -- 'x': a probe freed without a verdict (the request's own fault, or never used)
    redis.call('DEL', key .. ':probe')
  end
end
local out = {sum('f'), sum('r')}
while ARGV[i] do
  local key, want = ns .. 'cd:' .. ARGV[i], ARGV[i + 1] == '1'
  i = i + 2
  local c = tonumber(redis.call('GET', key .. ':fails') or '0')
  local pttl = redis.call('PTTL', key .. ':until')
  local owner = redis.call('GET', key .. ':probe')
  local probe, claimed = 0, 0
  if owner then probe = (owner == me) and 1 or 2 end
  if want and c >= limit and pttl < 0 and not owner then
    redis.call('SET', key .. ':probe', me, 'PX', probe_ms)
    probe, claimed = 1, 1
  end
  out[#out + 1] = {c, pttl, probe, claimed}
end
return out
"""


@dataclass
class _Mirror:
    """What the last tick said about one deployment, in this process's clock."""

    fails: int = 0
    until: float = 0.0  # cooling while now < until
    probe: int = 0  # 0 none, 1 this process's, 2 another's
    want: bool = False  # a request here was refused while the fleet waits for a probe
    grant: float | None = None  # when this process won the probe it has not handed out yet


class SharedHealth:
    """One Redis connection and the background tick shared by a process's cooldowns and retry budget."""

    def __init__(
        self,
        url: str,
        *,
        failures: int,
        cooldown: float,
        window: float,
        interval: float = 0.1,
        op_timeout: float = 0.25,
        backoff: float = 1.0,
        namespace: str = "guardproxy:health:",
        clock: Clock = time.monotonic,
    ) -> None:
        # lazily: only replicas sharing state pay for importing redis
        from .cache.redis_backend import fast_fail_client

        self.limit, self.cooldown, self.window = failures, cooldown, max(1, round(window))
        self.probe_timeout = max(cooldown, 1.0)
        self.interval, self.backoff, self.clock = interval, backoff, clock
        self.me = os.urandom(8).hex()
        self.ns = namespace
        self.degraded = False
        self.mirror: dict[str, _Mirror] = {}
        self.firsts = self.retries = 0  # fleet totals in the window, as of the last tick
        self.pending_firsts = self.pending_retries = 0  # this process's since the last tick
        self._ops: list[tuple[str, str]] = []
        self._deadline = 2 * op_timeout
        self._down_until = 0.0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: Any = fast_fail_client(url, op_timeout)
        self._tick_script = self._client.register_script(_TICK)

    # -- called on the request path (synchronous, no I/O) --------------------------------------

    def touch(self, key: str) -> _Mirror:
        """The mirror of `key`, watched from now on; starts the background tick on first use."""
        if self._task is None:
            self._start()
        m = self.mirror.get(key)
        if m is None:
            m = self.mirror[key] = _Mirror()
        return m

    def report(self, op: str, key: str) -> None:
        """Queue `f` (failure), `s` (success) or `x` (probe freed) for the next tick, which runs at once."""
        self._ops.append((op, key))
        if self._wake is not None:
            self._wake.set()

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on an event loop (a synchronous caller): local state only until one runs
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run())

    # -- the background tick -------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            # while a deployment is failing somewhere, look 10x as often: the others stop sooner
            hot = any(m.fails for m in self.mirror.values())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval / 10 if hot else self.interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.tick()

    async def tick(self) -> None:
        """Send what happened since the last tick, read the fleet's state back; never raises."""
        now = self.clock()
        if now < self._down_until:
            self._ops.clear()  # the local state already has them
            self.pending_firsts = self.pending_retries = 0
            return
        ops, self._ops = self._ops, []
        firsts, retries = self.pending_firsts, self.pending_retries
        for key, m in self.mirror.items():  # a won probe nobody here used frees the fleet's slot
            if m.grant is not None and now - m.grant > max(1.0, 10 * self.interval):
                m.grant = None
                ops.append(("x", key))
        keys = list(self.mirror)
        args: list[Any] = [self.ns, self.me, self.window, firsts, retries, self.limit]
        args += [int(self.cooldown * 1000) or 1, int(self.probe_timeout * 1000)]
        args += [int(max(60.0, 10 * self.cooldown) * 1000), len(ops)]
        for op, key in ops:
            args += [op, key]
        for key in keys:
            args += [key, "1" if self.mirror[key].want else "0"]
        try:
            async with asyncio.timeout(self._deadline):
                reply = await self._tick_script(keys=[], args=args)
        except Exception as exc:  # noqa: BLE001 - any Redis failure: local state, never a 500
            self._down_until = self.clock() + self.backoff
            self.pending_firsts = self.pending_retries = 0
            if not self.degraded:
                self.degraded = True
                log.warning(
                    "shared health state unavailable (redis %s): cooldowns and retry budget are per process",
                    type(exc).__name__,
                )
            return
        if self.degraded:
            self.degraded = False
            log.warning("shared health state restored: cooldowns and retry budget are shared again")
        self.pending_firsts -= firsts
        self.pending_retries -= retries
        self.firsts, self.retries = int(reply[0]), int(reply[1])
        now = self.clock()
        for key, (fails, pttl, probe, claimed) in zip(keys, reply[2:], strict=True):
            m = self.mirror[key]
            m.fails, m.probe = int(fails), int(probe)
            m.until = now + int(pttl) / 1000 if int(pttl) > 0 else 0.0
            if int(claimed):
                m.want, m.grant = False, now

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._client.aclose()


class SharedCooldowns(Cooldowns):
    """`Cooldowns` whose failures, cooldowns and probe are the fleet's (local state while Redis fails)."""

    def __init__(
        self, shared: SharedHealth, failures: int, seconds: float, clock: Clock = time.monotonic
    ) -> None:
        self.shared = shared  # before the base's __init__, which calls `configure`
        super().__init__(failures, seconds, clock)

    def configure(self, failures: int, seconds: float) -> None:
        """A reload's `retry` numbers: the fleet's counting uses them from the next tick."""
        super().configure(failures, seconds)
        self.shared.limit, self.shared.cooldown = failures, seconds
        self.shared.probe_timeout = max(seconds, 1.0)

    def try_claim(self, key: str) -> bool:
        m = self.shared.touch(key)
        if self.shared.degraded:
            return super().try_claim(key)
        now = self._clock()
        if now < m.until:
            return False
        if m.fails < self.shared.limit:
            return True
        if m.grant is not None:  # this process won the fleet's probe: this request is it
            m.grant = None
            return True
        if m.probe == 0:
            m.want = True
            self.shared.wake()  # the tick claims the fleet's probe for this process's next request
        return False

    def cooling(self, key: str) -> bool:
        if self.shared.degraded:
            return super().cooling(key)
        m = self.shared.touch(key)
        return self._clock() < m.until or (m.fails >= self.shared.limit and m.probe != 0)

    def remaining(self, key: str) -> float:
        if self.shared.degraded:
            return super().remaining(key)
        return max(0.0, self.shared.touch(key).until - self._clock())

    def success(self, key: str) -> None:
        super().success(key)
        m = self.shared.touch(key)
        m.fails, m.until, m.probe = 0, 0.0, 0
        self.shared.report("s", key)

    def failure(self, key: str, error: BaseException | None = None) -> None:
        super().failure(key, error)
        m = self.shared.touch(key)
        if isinstance(error, UpstreamRejected):
            self.shared.report("x", key)
            return
        m.fails += 1
        if m.fails >= self.shared.limit:  # what the tick will confirm; this process stops at once
            m.until = self._clock() + self._seconds
        self.shared.report("f", key)

    def states(self) -> dict[str, bool]:
        if self.shared.degraded:
            return super().states()
        return {k: self.cooling(k) for k, m in self.shared.mirror.items() if m.fails or m.until}


class SharedRetryBudget(RetryBudget):
    """`RetryBudget` over the fleet's attempts in the window (local state while Redis fails)."""

    def __init__(
        self, shared: SharedHealth, ratio: float, minimum: int, window: float, clock: Clock = time.monotonic
    ) -> None:
        self.shared = shared
        super().__init__(ratio, minimum, window, clock)

    def configure(self, ratio: float, minimum: int, window: float) -> None:
        super().configure(ratio, minimum, window)
        self.shared.window = max(1, round(window))

    def record_first(self) -> None:
        super().record_first()
        self.shared.pending_firsts += 1

    def try_spend(self) -> bool:
        s = self.shared
        if s.degraded:
            return super().try_spend()
        firsts, retries = s.firsts + s.pending_firsts, s.retries + s.pending_retries
        if retries >= max(self._min, self._ratio * firsts):
            return False
        super().try_spend()  # keep the local window warm for a fallback
        s.pending_retries += 1
        return True


def shared_resilience(settings: Settings) -> Resilience:
    """The `Resilience` for `settings`: shared through Redis when the cache backend is Redis."""
    resilience = Resilience(settings.retry)
    if settings.cache.backend == "redis":
        r = settings.retry
        shared = SharedHealth(
            settings.cache.url,
            failures=r.cooldown_failures,
            cooldown=r.cooldown_seconds,
            window=r.budget_window,
        )
        resilience.cooldowns = SharedCooldowns(shared, r.cooldown_failures, r.cooldown_seconds)
        resilience.budget = SharedRetryBudget(shared, r.budget_ratio, r.budget_min, r.budget_window)
    return resilience


def _shared(resilience: Resilience) -> SharedHealth | None:
    cooldowns = resilience.cooldowns
    return cooldowns.shared if isinstance(cooldowns, SharedCooldowns) else None


def export_metrics(registry: CollectorRegistry, current: Callable[[], Resilience]) -> None:
    """`guardproxy_shared_state_degraded`: 1 while this process decides on local state (Redis failing)."""
    try:
        gauge = Gauge(
            "guardproxy_shared_state_degraded",
            "1 while cooldowns and the retry budget fall back to this process (Redis unreachable).",
            registry=registry,
        )
    except ValueError:  # already registered: one Metrics shared by two app lifespans
        return
    gauge.set_function(lambda: float(bool((s := _shared(current())) and s.degraded)))


async def close_shared(resilience: Resilience) -> None:
    """Stop the background tick and close its Redis connection (the lifespan's shutdown)."""
    shared = _shared(resilience)
    if shared is not None:
        await shared.close()
