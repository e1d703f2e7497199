"""What the reference apps (2), (3) and (3L) share: the health route and how they are served."""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

HEALTH = b'{"status":"ok"}'


async def health(request: Request) -> Response:
    """200 while serving."""
    return Response(HEALTH, media_type="application/json")


def serve(app: Starlette) -> None:
    """Serve `app` on loopback (`--host`, `--port`), one worker, no access log."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
