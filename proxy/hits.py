"""Cache hits served like static files: read the body, find its key, look it up in memory, write.

A request answered from the cache once teaches `HitPath` which key its exact bytes map to (its
*route*). The next request with the same bytes, from a caller with the same key, with the same
`x-guardproxy-policy` header, under the same loaded configuration, is the same request: it would parse,
authorize and key identically. If the memory tier (`proxy.cache.memory`) still holds a fresh copy of
that key, the answer is the response rendered from the copy the first time (body bytes and every
header that does not change per request), sent as is: no parsing, no key, no JSON encoding.

What still runs for such a hit: authentication (once, in the guard), the rate limit, the request ids,
the metrics and the access-log line (`proxy.answer.Ledger`). Anything else (another caller, a changed
body, `Cache-Control: no-cache`, a reload, a copy older than `cache.memory_ttl`) goes the full way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .answer import Answer
from .auth import Caller
from .cache import decode_entry
from .cache.memory import HotEntry, MemoryTier
from .metrics import Metrics
from .respond import AnswerMeta, json_response, stream_response
from .services import Runtime

__all__ = ["HitPath", "PreparedHit"]

_MAX_ROUTES = 4096  # request shapes remembered per process (forgotten all at once when full)

Fingerprint = tuple[bytes, str | None, str | None]


@dataclass(frozen=True, slots=True)
class _Route:
    key: str
    alias: str
    policy: str
    stream: bool
    include_usage: bool


@dataclass(frozen=True, slots=True)
class PreparedHit:
    """A rendered hit: the response (reused for every request; it holds no per-request state), its
    metadata for the ledger (never mutated) and the tokens it saves."""

    alias: str
    meta: AnswerMeta
    answer: Answer
    tokens_saved: int

    def count(self, metrics: Metrics) -> None:
        """The hit's own counters (requests, latency and the access line are the ledger's)."""
        metrics.cache.labels("hit").inc()
        metrics.tokens_saved.labels(self.alias).inc(self.tokens_saved)


class HitPath:
    """The request-bytes -> cache-key routes of one process, and the hits rendered from memory."""

    def __init__(self, tier: MemoryTier) -> None:
        self.tier = tier
        self._routes: dict[Fingerprint, _Route] = {}
        self._runtime: Runtime | None = None

    def find(
        self, runtime: Runtime, raw: bytes, caller: Caller, headers: Mapping[str, str]
    ) -> PreparedHit | None:
        """The prepared hit for these exact request bytes, or None (go the full way)."""
        if runtime is not self._runtime or "cache-control" in headers:
            return None
        route = self._routes.get((raw, caller.key_hash, headers.get("x-guardproxy-policy")))
        if route is None:
            return None
        entry = self.tier.peek(route.key)
        if entry is None:
            return None
        hit: PreparedHit | None = entry.memo.get(route)
        return hit if hit is not None else _prepare(entry, route)

    def learn(
        self,
        runtime: Runtime,
        raw: bytes,
        caller: Caller,
        headers: Mapping[str, str],
        *,
        stream: bool,
        include_usage: bool,
        meta: AnswerMeta,
        alias: str,
    ) -> None:
        """Remember which key these request bytes were answered from (call it for a cache hit only)."""
        if "cache-control" in headers:
            return
        if runtime is not self._runtime or len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()  # a reload may change any of alias, policy, limits and keys
            self._runtime = runtime
        route = _Route(meta.cache_key, alias, meta.policy, stream, include_usage)
        self._routes[(raw, caller.key_hash, headers.get("x-guardproxy-policy"))] = route


def _prepare(entry: HotEntry, route: _Route) -> PreparedHit | None:
    """Render the copy once, as the full path would (`pipeline._replay`); None for a tombstone."""
    cached = decode_entry(entry.payload)
    if cached is None:
        return None
    meta = AnswerMeta(
        policy=route.policy,
        cache="hit",
        cache_key=route.key,
        outcome=cached.outcome,
        deployment=cached.deployment,
        repairs=cached.repairs,
    )
    if route.stream:
        response = stream_response(cached.response, meta, include_usage=route.include_usage)
    else:
        response = json_response(cached.response, meta)
    usage = cached.response.get("usage") or {}
    tokens = int(usage.get("total_tokens") or 0)
    hit = PreparedHit(route.alias, meta, Answer(response, meta), tokens)
    entry.memo[route] = hit
    return hit
