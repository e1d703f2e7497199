"""The upstream seam: one call of one deployment, through the direct or the litellm transport."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UpstreamTimeout, UpstreamTransient
from ..settings import Deployment, LimitSettings
from .assemble import ChunkAssembler
from .bounded import too_large
from .deadline import Deadlines
from .direct import DEFAULT_BASES, DirectTransport
from .idle import IdleWatch
from .litellm_transport import LitellmTransport
from .pricing import Prices, load_price_map

__all__ = ["CUT", "ChunkAssembler", "Upstream", "UpstreamResult", "uses_direct"]

CUT = "The provider's stream ended before the answer was complete."  # a stream that stopped too soon


def uses_direct(dep: Deployment) -> bool:
    """Whether `dep` goes out through the direct aiohttp path."""
    if dep.transport != "auto":
        return dep.transport == "direct"
    if dep.provider == "mock":
        return False
    return dep.provider in DEFAULT_BASES and bool(dep.api_base or DEFAULT_BASES[dep.provider])


@dataclass(frozen=True)
class UpstreamResult:
    """One successful upstream answer."""

    completion: dict[str, Any]
    tokens: int
    cost: float | None


class Upstream:
    """Owns both transports, the per-deployment call counters and the price map.

    `limits` (read once, at start-up) bounds what one answer may bring in: `max_upstream_bytes`
    and, per SSE line, `max_sse_line_bytes`.
    """

    def __init__(
        self,
        *,
        direct: DirectTransport | None = None,
        litellm: LitellmTransport | None = None,
        prices: Prices | None = None,
        limits: LimitSettings | None = None,
    ) -> None:
        self.limits = limits or LimitSettings()
        size, line = self.limits.max_upstream_bytes, self.limits.max_sse_line_bytes
        self.direct = direct or DirectTransport(max_bytes=size, max_line=line)
        self.litellm = litellm or LitellmTransport(max_bytes=size, max_line=line)
        self._prices = prices
        self._calls: dict[str, int] = {}
        self.deadlines = Deadlines()  # every attempt's timeout, on one shared timer

    @property
    def prices(self) -> Prices:
        if self._prices is None:
            self._prices = Prices(load_price_map())
        return self._prices

    def warm(self, deployments: list[Deployment]) -> None:
        """Import litellm at start-up when some deployment needs it (not on the first request)."""
        if any(not uses_direct(d) for d in deployments):
            self.litellm.litellm()

    async def warm_streaming(self) -> None:
        """Run one in-process mock stream through litellm, whose streaming path loads lazily (~1 s)."""
        if self.litellm.loaded:
            dep = Deployment(model="mock/echo")
            with contextlib.suppress(Exception):
                async for _ in self.litellm.stream(
                    dep, {"messages": [{"role": "user", "content": "warm"}]}, 0
                ):
                    pass

    def _next_index(self, key: str) -> int:
        n = self._calls.get(key, 0)
        self._calls[key] = n + 1
        return n

    def result(self, dep: Deployment, completion: dict[str, Any]) -> UpstreamResult:
        usage = completion.get("usage") if isinstance(completion.get("usage"), Mapping) else None
        tokens = int(usage.get("total_tokens") or 0) if usage else 0
        return UpstreamResult(completion, tokens, self.prices.cost(dep, usage))

    async def complete(
        self, dep: Deployment, body: Mapping[str, Any], *, key: str, timeout: float
    ) -> UpstreamResult:
        """One non-streamed attempt, bounded by `timeout` seconds."""
        return await self._once(dep, key, timeout, self.direct.complete, self.litellm.complete, body)

    async def stream(
        self,
        dep: Deployment,
        body: Mapping[str, Any],
        *,
        key: str,
        timeout: float,
        into: ChunkAssembler,
        idle: float | None = None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """One streamed attempt: `timeout` bounds the whole stream, `idle` the wait for each chunk.

        The chunks come in lists, those that arrived together (the direct transport: one network read;
        litellm: one by one), each list added to `into` before it is yielded: the one pass over the
        chunks that assembles the answer also bounds it (text, refusal, tool calls) by
        `limits.max_upstream_bytes`, and a stream that ends before every choice has its finish_reason
        is cut (UpstreamTransient). A provider that drips one chunk just inside every gap still ends at
        `timeout`.
        """
        index = self._next_index(key)
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        if uses_direct(dep):
            source = self.direct.stream(dep, body)
        else:
            source = _singly(self.litellm.stream(dep, body, index))
        iterator = source.__aiter__()
        gap = timeout if idle is None else min(idle, timeout)
        watch = IdleWatch(gap, asyncio.get_running_loop().time() + timeout)
        limit = self.limits.max_upstream_bytes
        try:
            while True:
                if not watch.begin():
                    raise _stream_timeout(gap, timeout, whole=True)
                try:
                    batch = await iterator.__anext__()
                except StopAsyncIteration:
                    if not into.finished:
                        raise UpstreamTransient(CUT) from None
                    return
                except asyncio.CancelledError:
                    if watch.timed_out():
                        raise _stream_timeout(gap, timeout, whole=watch.whole) from None
                    raise
                watch.end()
                into.add_all(batch)
                if into.size > limit:
                    raise too_large(limit, "streamed answer was larger than limits.max_upstream_bytes")
                yield batch
        finally:
            watch.close()
            await source.aclose()  # type: ignore[attr-defined]

    async def respond(
        self, dep: Deployment, body: Mapping[str, Any], *, key: str, timeout: float
    ) -> dict[str, Any]:
        """One Responses API attempt of an `api: responses` deployment (direct transport only, not
        streamed), bounded by `timeout` seconds: the provider's Response object."""
        self._next_index(key)
        try:
            async with self.deadlines.within(timeout):
                return await self.direct.respond(dep, body)
        except TimeoutError:
            raise UpstreamTimeout("The provider did not answer in time.") from None

    async def embed(
        self, dep: Deployment, body: Mapping[str, Any], *, key: str, timeout: float
    ) -> UpstreamResult:
        """One embeddings attempt, bounded by `timeout` seconds."""
        return await self._once(dep, key, timeout, self.direct.embed, self.litellm.embed, body)

    async def _once(
        self,
        dep: Deployment,
        key: str,
        timeout: float,
        direct: Callable[[Deployment, Mapping[str, Any]], Awaitable[dict[str, Any]]],
        through_litellm: Callable[[Deployment, Mapping[str, Any], int], Awaitable[dict[str, Any]]],
        body: Mapping[str, Any],
    ) -> UpstreamResult:
        index = self._next_index(key)
        try:
            async with self.deadlines.within(timeout):
                if uses_direct(dep):
                    data = await direct(dep, body)
                else:
                    data = await through_litellm(dep, body, index)
        except TimeoutError:
            raise UpstreamTimeout("The provider did not answer in time.") from None
        return self.result(dep, data)

    async def close(self) -> None:
        await self.direct.close()
        await self.litellm.close()


async def _singly(chunks: AsyncIterator[dict[str, Any]]) -> AsyncGenerator[list[dict[str, Any]], None]:
    """A stream of chunks as a stream of one-chunk lists (closing it when closed)."""
    try:
        async for chunk in chunks:
            yield [chunk]
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _stream_timeout(gap: float, timeout: float, *, whole: bool) -> UpstreamTimeout:
    if whole:
        return UpstreamTimeout(f"The provider did not finish the answer within {timeout:g} s.")
    return UpstreamTimeout(f"The provider sent nothing for {gap:g} s in the middle of the answer.")
