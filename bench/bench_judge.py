"""Micro-benchmark of the validation hot path: `proxy.judge.judge` on the benchmark's ~1 KB answer.

Run: .venv/bin/python -m bench.bench_judge [--calls N] [--repeats R]

Uses the default policy's validators for the benchmark request (`response_format: json_schema`), as
`Policy.validators_for` builds them. Every call gets a fresh but identical schema dict (as the server
does: each request body is parsed anew), prepared outside the timed loop. Prints the median, min and
max microseconds per call over the repeats, plus the same figures for the parse and the schema-cache
lookup alone. Times are CPU time of this process (`time.process_time`), so that other processes
sharing the cores do not count.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bench.payload import CONTENT, completion, request_body
from proxy.judge import judge
from proxy.policy import load_policy
from validators import Output, RequestContext, default_registry

ROOT = Path(__file__).resolve().parent.parent


def _contexts(n: int) -> list[RequestContext]:
    raw = orjson.dumps(request_body())
    return [RequestContext(response_format=orjson.loads(raw)["response_format"]) for _ in range(n)]


def _time(fn: Callable[[int], None], calls: int, repeats: int) -> list[float]:
    """Microseconds per call, one figure per repeat."""
    fn(min(calls, 200))  # warm up: compile the schema, fill caches
    figures = []
    for _ in range(repeats):
        start = time.process_time()
        fn(calls)
        figures.append((time.process_time() - start) / calls * 1e6)
    return figures


def run(calls: int = 2000, repeats: int = 9) -> dict[str, list[float]]:
    """µs per call for judge(), Output parse, and SchemaCache.get on a fresh schema dict."""
    registry = default_registry(plugins=False)
    policy = load_policy(ROOT / "policies" / "default.yaml", registry)
    contexts = _contexts(calls)
    validators = policy.validators_for(registry, contexts[0])
    answer = completion()
    cache = registry.schema_cache

    def judge_loop(n: int) -> None:
        for ctx in contexts[:n]:
            verdict = judge(answer, validators, ctx, allow_repair=True)
            if not verdict.ok:
                raise SystemExit(f"the benchmark answer failed validation: {verdict.violations}")

    def parse_loop(n: int) -> None:
        for _ in range(n):
            Output(CONTENT).json_error()

    def cache_loop(n: int) -> None:
        for ctx in contexts[:n]:
            cache.get(ctx.response_schema())

    gc.collect()
    gc.freeze()  # the prepared requests are long-lived: keep the collector from walking them each time
    return {
        "judge": _time(judge_loop, calls, repeats),
        "parse": _time(parse_loop, calls, repeats),
        "schema_cache.get": _time(cache_loop, calls, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(f"{'what':<18} {'median µs':>10} {'min':>8} {'max':>8}   ({args.repeats} x {args.calls} calls)")
    for name, figures in run(args.calls, args.repeats).items():
        print(f"{name:<18} {statistics.median(figures):>10.2f} {min(figures):>8.2f} {max(figures):>8.2f}")


if __name__ == "__main__":
    main()
