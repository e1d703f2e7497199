"""Subjects (3) and (3s): a bare Starlette app forwarding the body through one pooled aiohttp session
(the ceiling); a streamed request's answer is relayed chunk by chunk as it arrives."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bench.reference_app import health, serve

UPSTREAM_ENV = "BENCH_UPSTREAM"  # e.g. http://127.0.0.1:9090/v1


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """One keep-alive session for the process's life."""
    connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector) as session:
        app.state.session = session
        app.state.url = os.environ[UPSTREAM_ENV].rstrip("/") + "/chat/completions"
        yield


async def chat(request: Request) -> Response:
    """POST the body upstream unchanged; answer what came back (a stream relayed chunk by chunk)."""
    body = await request.body()
    session: aiohttp.ClientSession = request.app.state.session
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-mock"}
    if b'"stream": true' in body or b'"stream":true' in body:  # subject (3s): no parsing here either
        return await _relay(session, request.app.state.url, body, headers)
    async with session.post(request.app.state.url, data=body, headers=headers) as upstream:
        payload = await upstream.read()
        media = upstream.headers.get("Content-Type", "application/json")
        return Response(payload, status_code=upstream.status, media_type=media)


async def _relay(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> Response:
    upstream = await session.post(url, data=body, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.content.iter_any():
                yield chunk
        finally:
            upstream.release()

    media = upstream.headers.get("Content-Type", "text/event-stream")
    return StreamingResponse(chunks(), status_code=upstream.status, media_type=media)


app = Starlette(
    routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)],
    lifespan=lifespan,
)


if __name__ == "__main__":
    serve(app)
