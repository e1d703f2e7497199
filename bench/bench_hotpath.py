"""guardproxy's own CPU per request, without the HTTP server: the ASGI app is called in-process.

Run: .venv/bin/python -m bench.bench_hotpath [--profile] [--requests 3000]
Starts `guardproxy mock-server` for the upstream, builds the app for subject (5) (direct path, default
policy, json_schema, no cache) and (7) (disk cache hits), and prints the median microseconds per
request over several rounds. `--profile` adds a cProfile of each (sorted by internal time). This
isolates our code from uvicorn and the load generator: the figure to watch while optimising.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.configs import guardproxy_config, mock_config
from bench.payload import request_body
from bench.subjects import HEADERS, free_port
from proxy.app import create_app

BENCH = Path(__file__).resolve().parent


def _scope(body: bytes) -> dict[str, Any]:
    headers = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
    headers += [(b"content-length", str(len(body)).encode()), (b"host", b"127.0.0.1")]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _one(app: Any, body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(body), receive, send)
    return status


async def _measure(config: Path, requests: int, rounds: int, profile: bool) -> float:
    app = create_app(config, reload_interval=0, freeze_gc=True)  # as `guardproxy serve` builds it
    body = orjson.dumps(request_body())
    async with app.starlette.router.lifespan_context(app.starlette):
        for _ in range(50):  # warm: pools, schema caches, the cache entry
            assert await _one(app, body) == 200
        per_request = []
        profiler = cProfile.Profile() if profile else None
        for _ in range(rounds):
            started = time.process_time()
            if profiler:
                profiler.enable()
            for _ in range(requests):
                await _one(app, body)
            if profiler:
                profiler.disable()
            per_request.append((time.process_time() - started) / requests * 1e6)
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return statistics.median(per_request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=["5", "7"])
    args = parser.parse_args()
    logging.getLogger("guardproxy").addHandler(logging.NullHandler())
    logging.getLogger("guardproxy").propagate = False
    logging.getLogger("guardproxy").setLevel("INFO")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        cmd = [sys.executable, "-m", "proxy", "mock-server", "--port", str(port), "--config"]
        mock = subprocess.Popen([*cmd, str(mock_config(work))], cwd=BENCH.parent, env=os.environ.copy())
        try:
            upstream = f"http://127.0.0.1:{port}/v1"
            _wait(port)
            subjects = {
                "5": ("direct, json_schema, no cache", "none"),
                "7": ("disk cache hits", "disk"),
            }
            for name, (title, cache) in subjects.items():
                if args.only and args.only != name:
                    continue
                config = guardproxy_config(
                    work, f"hot{name}", upstream, transport="direct", cache=cache, port=free_port()
                )
                cpu = asyncio.run(_measure(config, args.requests, args.rounds, args.profile))
                print(f"({name}) {title}: {cpu:.0f} µs CPU per request (process, incl. the aiohttp client)")
        finally:
            mock.terminate()
            mock.wait()
    return 0


def _wait(port: int) -> None:
    import socket

    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("mock-server did not start")


if __name__ == "__main__":
    sys.exit(main())
