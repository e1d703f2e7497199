"""Turning a verdict (or a cached answer) into the HTTP answer: body, SSE chunks and our headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import ProxyError
from .wire import SSE_DONE, completion_to_chunks, sse

__all__ = [
    "AnswerMeta",
    "EventStream",
    "SSE_HEADERS",
    "error_response",
    "exact_decimal",
    "json_response",
    "stream_response",
    "waiting_stream",
]

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
KEEP_ALIVE = b": keep-alive\n\n"  # an SSE comment: the official SDKs skip it
log = logging.getLogger("guardproxy")


@dataclass
class AnswerMeta:
    """The guardproxy headers of one answer."""

    policy: str
    cache: str
    cache_key: str
    outcome: str = "pass"
    attempts: int = 0
    deployment: str = ""
    repairs: tuple[str, ...] = ()
    tokens: int = 0
    cost: float | None = None
    extra: dict[str, str] = field(default_factory=dict)
    violations: tuple[dict[str, Any], ...] = ()  # what this request's ladder found in its answer
    status: int | None = None  # how the answer ended when not as its HTTP status (an in-band error, 499)

    def headers(self) -> dict[str, str]:
        out = {
            "x-guardproxy-outcome": self.outcome,
            "x-guardproxy-attempts": str(self.attempts),
            "x-guardproxy-deployment": self.deployment,
            "x-guardproxy-policy": self.policy,
            "x-guardproxy-cache": self.cache,
            "x-guardproxy-cache-key": self.cache_key,
            "x-guardproxy-total-tokens": str(self.tokens),
        }
        if self.repairs:
            out["x-guardproxy-repairs"] = ",".join(self.repairs)
        if self.cost is not None:
            out["x-guardproxy-cost"] = exact_decimal(self.cost)
        out.update(self.extra)
        return out


def exact_decimal(value: float) -> str:
    """The shortest decimal that reads back as `value`, never in exponent form (1.5e-05 -> 0.000015)."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def error_response(
    exc: ProxyError, request_id: str | None = None, *, context: Mapping[str, str] | None = None
) -> Response:
    """The OpenAI-shaped error answer; `context`: the x-guardproxy-* headers of the request it ended."""
    headers = {**exc.context_headers, **(context or {}), **exc.headers()}
    if request_id:
        headers["x-request-id"] = request_id
    return Response(
        orjson.dumps(exc.body()), status_code=exc.status_code, media_type="application/json", headers=headers
    )


def json_response(completion: Mapping[str, Any], meta: AnswerMeta) -> Response:
    return Response(orjson.dumps(completion), media_type="application/json", headers=meta.headers())


def _events(
    completion: Mapping[str, Any], include_usage: bool, verdict: Mapping[str, Any] | None = None
) -> list[bytes]:
    extra = {"guardproxy": verdict} if verdict is not None else None
    events = [
        sse(chunk)
        for chunk in completion_to_chunks(completion, include_usage=include_usage, extra_last=extra)
    ]
    events.append(SSE_DONE)
    return events


class _ReplayedStream(Response):
    """All the events of a replayed stream in one body, framed like a live event stream: no
    content-length, so the server sends it chunked (clients that read an event stream until its last
    chunk keep working; Python's `http.client` never marks a content-length response read by lines)."""

    media_type = "text/event-stream"

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        super().init_headers(headers)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]


class EventStream(StreamingResponse):
    """A live event stream, without Starlette's per-response disconnect listener (a task group and one
    more task per stream, on ASGI servers below spec 2.4): `proxy.lifecycle` already watches every
    request and cancels it when its client leaves, which closes the body iterator."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


def stream_response(completion: Mapping[str, Any], meta: AnswerMeta, *, include_usage: bool) -> Response:
    """A complete answer replayed as OpenAI chunks: every event is known, so they go out in one body
    (a streaming response would spend a task and a write per chunk on what is already here)."""
    return _ReplayedStream(
        b"".join(_events(completion, include_usage)), headers={**SSE_HEADERS, **meta.headers()}
    )


async def waiting_stream(
    work: Awaitable[Mapping[str, Any]],
    meta: AnswerMeta,
    *,
    include_usage: bool,
    keepalive: float,
) -> Response:
    """Wait for a buffered answer; if it takes longer than `keepalive`, commit to a 200 stream, send SSE
    comments while waiting and report the verdict in the last chunk (outcome `streaming`).

    `meta` has the headers known before the answer (policy, cache state and key); `work` fills in the
    rest. A failure after the commit ends the stream with one error event and is noted on `meta`.
    """
    task = asyncio.ensure_future(work)
    try:
        done = await _finished_within(task, keepalive)
    except BaseException:  # cancelled (the client left): the work must not outlive the request
        task.cancel()
        raise
    if done:
        completion = task.result()  # errors propagate to the pipeline with their status
        return stream_response(completion, meta, include_usage=include_usage)
    known = {
        "x-guardproxy-policy": meta.policy,
        "x-guardproxy-cache": meta.cache,
        "x-guardproxy-cache-key": meta.cache_key,
    }
    headers = {**SSE_HEADERS, **known, "x-guardproxy-outcome": "streaming"}
    return EventStream(_committed(task, meta, include_usage, keepalive), headers=headers)


async def _finished_within(task: asyncio.Future[Any], seconds: float) -> bool:
    """Whether `task` is done within `seconds`; it runs on either way. `asyncio.wait({task}, timeout=...)`
    with one future and one timer instead of its sets and per-call closures (a buffered stream waits once)."""
    if task.done():
        return True
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(seconds, wake)
    task.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


async def _committed(
    task: asyncio.Future[Mapping[str, Any]], meta: AnswerMeta, include_usage: bool, keepalive: float
) -> AsyncGenerator[bytes, None]:
    """The body of a committed buffered stream: keep-alives until the answer is there, then the answer."""
    try:
        yield KEEP_ALIVE  # commits the 200 now: the client and any intermediary see the stream alive
        while not await _finished_within(task, keepalive):
            yield KEEP_ALIVE
        try:
            completion = task.result()
        except ProxyError as exc:
            meta.status, meta.outcome = exc.status_code, "rejected" if exc.status_code == 422 else "error"
            yield sse(exc.body())
            return
        except Exception:
            log.exception("buffered stream failed")
            meta.status, meta.outcome = 500, "error"
            yield sse(ProxyError("The request failed.").body())
            return
        verdict: dict[str, Any] = {
            "outcome": meta.outcome,
            "violations": list(meta.violations),
            "attempts": meta.attempts,
            "total_tokens": meta.tokens,  # the headers left before these were known
        }
        if meta.cost is not None:
            verdict["cost"] = meta.cost
        for event in _events(completion, include_usage, verdict):
            yield event
    finally:
        if not task.done():
            meta.status = 499  # the client left before the answer
            task.cancel()
