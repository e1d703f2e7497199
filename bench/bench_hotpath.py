"""guardproxy's own CPU per request, without the HTTP server: the ASGI app is called in-process.

Run: .venv/bin/python -m bench.bench_hotpath [--profile] [--requests 3000]
Starts `guardproxy mock-server` for the upstream, builds the app for subject (5) (direct path, default
policy, json_schema, no cache) and (7) (disk cache hits), and prints the median microseconds per
request over several rounds. Subject (5r), the same request as `POST /v1/responses` (`store` at its
default), runs on (5)'s app with its rounds interleaved with (5)'s, and the (5r)/(5) ratio is printed.
`--profile` adds a cProfile of each, timed in CPU time (sorted by internal time; BENCH_SORT=cumulative
sorts by cumulative time; BENCH_PROFILE_OUT=/tmp/p also writes /tmp/p-5.prof etc. for pstats). This
isolates our code from uvicorn and the load generator: the figure to watch while optimising.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.configs import guardproxy_config, mock_config
from bench.payload import request_body, responses_body
from bench.subjects import CHAT_PATH, HEADERS, RESPONSES_PATH, free_port
from proxy.app import create_app

BENCH = Path(__file__).resolve().parent


def _scope(body: bytes, path: str) -> dict[str, Any]:
    headers = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
    headers += [(b"content-length", str(len(body)).encode()), (b"host", b"127.0.0.1")]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: Any, body: bytes, path: str) -> tuple[int, bytes]:
    """One request through the ASGI app, in process: its status and body."""
    sent = False
    status, out = 0, []

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
        elif message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    await app(_scope(body, path), receive, send)
    return status, b"".join(out)


async def _one(app: Any, body: bytes, path: str) -> int:
    return (await call(app, body, path))[0]


async def _measure(
    config: Path, paths: dict[str, str], requests: int, rounds: int, profile: bool
) -> tuple[dict[str, float], dict[str, float]]:
    """Median µs of CPU per request of each subject (name -> path) on one app, their rounds interleaved
    (A B, B A, ...) so drift falls on all alike; and per round each subject's ratio to the first."""
    app = create_app(config, reload_interval=0, freeze_gc=True)  # as `guardproxy serve` builds it
    bodies = {
        n: orjson.dumps(responses_body() if p == RESPONSES_PATH else request_body()) for n, p in paths.items()
    }
    names = list(paths)
    async with app.starlette.router.lifespan_context(app.starlette):
        for name in names:
            for _ in range(50):  # warm: pools, schema caches, the cache entry
                assert await _one(app, bodies[name], paths[name]) == 200
        per_request: dict[str, list[float]] = {name: [] for name in names}
        profilers = {name: cProfile.Profile(time.process_time) for name in names} if profile else {}
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                profiler = profilers.get(name)
                started = time.process_time()
                if profiler:
                    profiler.enable()
                for _ in range(requests):
                    await _one(app, bodies[name], paths[name])
                if profiler:
                    profiler.disable()
                per_request[name].append((time.process_time() - started) / requests * 1e6)
        for name, profiler in profilers.items():
            print(f"--- ({name})")
            if os.environ.get("BENCH_PROFILE_OUT"):
                profiler.dump_stats(f"{os.environ['BENCH_PROFILE_OUT']}-{name}.prof")
            pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(25)
    first = per_request[names[0]]
    medians = {name: statistics.median(cpu) for name, cpu in per_request.items()}
    ratios = {
        name: statistics.median(a / b for a, b in zip(cpu, first, strict=True))
        for name, cpu in per_request.items()
    }
    return medians, ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=["5", "5r", "7"], help="5r: subjects 5 and 5r, interleaved")
    args = parser.parse_args()
    logging.getLogger("guardproxy").addHandler(logging.NullHandler())
    logging.getLogger("guardproxy").propagate = False
    logging.getLogger("guardproxy").setLevel("INFO")
    titles = {
        "5": "direct, json_schema, no cache",
        "5r": "the same, /v1/responses",
        "7": "disk cache hits",
    }
    # one app per group: 5r runs on subject 5's app (as in `make bench`), interleaved with it
    five = {"5": CHAT_PATH} if args.only == "5" else {"5": CHAT_PATH, "5r": RESPONSES_PATH}
    groups = {"5": ("none", five), "7": ("disk", {"7": CHAT_PATH})}
    if args.only:
        wanted = "7" if args.only == "7" else "5"
        groups = {wanted: groups[wanted]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with mock_upstream(work) as upstream:
            for group, (cache, paths) in groups.items():
                config = guardproxy_config(
                    work, f"hot{group}", upstream, transport="direct", cache=cache, port=free_port()
                )
                cpu, ratio = asyncio.run(_measure(config, paths, args.requests, args.rounds, args.profile))
                for name in paths:
                    line = f"({name}) {titles[name]}: {cpu[name]:.0f} µs CPU per request"
                    print(line + " (process, incl. the aiohttp client)")
                if "5r" in paths:
                    print(f"(5r)/(5) CPU per request: {ratio['5r']:.3f} (median of the per-round ratios)")
    return 0


@contextlib.contextmanager
def mock_upstream(work: Path) -> Iterator[str]:
    """`guardproxy mock-server` with the bench's labels (config written into `work`): its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "proxy", "mock-server", "--port", str(port), "--config"]
    mock = subprocess.Popen([*cmd, str(mock_config(work))], cwd=BENCH.parent, env=os.environ.copy())
    try:
        _wait(port)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        mock.terminate()
        mock.wait()


def _wait(port: int) -> None:
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("mock-server did not start")


if __name__ == "__main__":
    sys.exit(main())
