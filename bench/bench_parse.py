"""Micro-benchmark of the request hot path: body decoding + chat parsing, and the cache key.

Run: .venv/bin/python -m bench.bench_parse   (prints median microseconds per call; `run()` returns them)

Each figure is the median, over `REPEATS` rounds, of the mean time of `LOOPS` calls on the benchmark
request of bench/payload.py (system + user messages, a json_schema response_format with the 7-field
order schema). The `float temperature` rows send `temperature: 0.7` instead of 0, the common case.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.payload import request_body
from proxy.cache.key import cache_key
from proxy.settings import LimitSettings
from proxy.wire import decode_body, parse_chat_request

LOOPS = 2000
REPEATS = 15


def _median_us(fn: Callable[[], Any]) -> float:
    rounds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(LOOPS):
            fn()
        rounds.append((time.perf_counter() - start) / LOOPS)
    return statistics.median(rounds) * 1e6


def _key(body: Any) -> str:
    return cache_key(
        request=body,
        alias="fixed",
        deployments=["mock/fixed"],
        policy_name="default",
        policy_hash="a" * 64,
        scope_key_hash=None,
    )


def run() -> dict[str, float]:
    """Time each step on the benchmark request; print and return median µs per call."""
    limits = LimitSettings()
    out: dict[str, float] = {}
    for label, temperature in (("", 0), (" (float temperature)", 0.7)):
        raw = orjson.dumps({**request_body(), "temperature": temperature})
        body = parse_chat_request(decode_body(raw), limits).body
        out[f"decode_body{label}"] = _median_us(lambda r=raw: decode_body(r))
        out[f"decode_body+parse_chat_request{label}"] = _median_us(
            lambda r=raw: parse_chat_request(decode_body(r), limits)
        )
        out[f"cache_key{label}"] = _median_us(lambda b=body: _key(b))
        out[f"all three{label}"] = _median_us(
            lambda r=raw: _key(parse_chat_request(decode_body(r), limits).body)
        )
    width = max(map(len, out))
    print(f"median µs per call ({REPEATS} rounds of {LOOPS} calls)")
    for name, us in out.items():
        print(f"  {name:<{width}} {us:8.2f}")
    return out


if __name__ == "__main__":
    run()
