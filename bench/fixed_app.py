"""Subject (2): a Starlette app answering every chat completion with one fixed body (cache-hit ceiling)."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.payload import completion
from bench.reference_app import health, serve

BODY = orjson.dumps(completion())


async def chat(request: Request) -> Response:
    """Read the body (as any server must), answer the fixed completion."""
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(
    routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)],
)


if __name__ == "__main__":
    serve(app)
