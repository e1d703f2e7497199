"""Subject (2): a Starlette app answering every chat completion with one fixed body (cache-hit ceiling)."""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from payload import completion
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = orjson.dumps(completion())
HEALTH = b'{"status":"ok"}'


async def chat(request: Request) -> Response:
    """Read the body (as any server must), answer the fixed completion."""
    await request.body()
    return Response(BODY, media_type="application/json")


async def health(request: Request) -> Response:
    """200 while serving."""
    return Response(HEALTH, media_type="application/json")


app = Starlette(
    routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)],
)


def main() -> None:
    """Serve on loopback, one worker, no access log."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
