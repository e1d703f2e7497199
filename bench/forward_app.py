"""Subject (3): a bare Starlette app forwarding the body through one pooled aiohttp session (the ceiling)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import aiohttp
from reference_app import health, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
    """POST the body upstream unchanged; answer what came back."""
    body = await request.body()
    session: aiohttp.ClientSession = request.app.state.session
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-mock"}
    async with session.post(request.app.state.url, data=body, headers=headers) as upstream:
        payload = await upstream.read()
        media = upstream.headers.get("Content-Type", "application/json")
        return Response(payload, status_code=upstream.status, media_type=media)


app = Starlette(
    routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)],
    lifespan=lifespan,
)


if __name__ == "__main__":
    serve(app)
