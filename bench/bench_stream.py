"""guardproxy's own CPU per streamed request, without the HTTP server: the ASGI app is called in-process.

Run: .venv/bin/python -m bench.bench_stream [--profile] [--requests 300] [--rounds 10] [--only 5s|5p]
Starts `guardproxy mock-server` for the upstream (the ~1 KB answer in 16-character chunks, sent at once)
and prints the microseconds of CPU per request (median and lowest over the rounds: on a busy machine
compare the lowest) for (5s) subject 5's request with `stream: true` (the default policy buffers,
validates, then replays) and (5p) the same request to a `stream: passthrough` policy (the
time-to-first-byte test's regex deny-list). `--profile` adds a cProfile of each (sorted by internal
time; BENCH_SORT=cumulative sorts by cumulative time). The figure to watch for the (5s)/(3s) target.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.bench_hotpath import call, mock_upstream
from bench.configs import policies
from bench.payload import LABEL, request_body
from bench.subjects import CHAT_PATH
from proxy.app import create_app

BENCH = Path(__file__).resolve().parent
ALIASES = {  # alias -> (policy, title)
    "5s": ("default", "stream: true, default policy (buffered)"),
    "5p": ("bench-passthrough", "stream: true, passthrough (a regex deny-list)"),
}


def _config(work: Path, upstream: str) -> Path:
    deployment = {"model": f"openai/{LABEL}", "api_base": upstream, "transport": "direct"}
    models = {name: {"policy": policy, "deployments": [deployment]} for name, (policy, _) in ALIASES.items()}
    data = {
        "models": models,
        "cache": {"backend": "none"},
        "policies_dir": str(policies(work)),
        "default_policy": "default",
    }
    path = work / "guardproxy-streams.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def _one(app: Any, body: bytes) -> bytes:
    return (await call(app, body, CHAT_PATH))[1]


async def _measure(
    config: Path, alias: str, requests: int, rounds: int, profile: bool
) -> tuple[float, float]:
    app = create_app(config, reload_interval=0, freeze_gc=True)  # as `guardproxy serve` builds it
    body = orjson.dumps(request_body(stream=True, model=alias))
    async with app.starlette.router.lifespan_context(app.starlette):
        for _ in range(50):  # warm: pools, schema caches
            answer = await _one(app, body)
            assert answer.endswith(b"data: [DONE]\n\n"), answer[-300:]
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
            pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(30)
    return min(per_request), statistics.median(per_request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=sorted(ALIASES))
    args = parser.parse_args()
    logging.getLogger("guardproxy").addHandler(logging.NullHandler())
    logging.getLogger("guardproxy").propagate = False
    logging.getLogger("guardproxy").setLevel("INFO")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with mock_upstream(work) as upstream:
            config = _config(work, upstream)
            for alias, (_, title) in ALIASES.items():
                if args.only and args.only != alias:
                    continue
                low, median = asyncio.run(_measure(config, alias, args.requests, args.rounds, args.profile))
                print(f"({alias}) {title}: {median:.0f} µs CPU per request (median; min {low:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
