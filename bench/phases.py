"""The run's phases besides the load rounds: start-up timing, probes, streaming TTFB, validator figures."""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import measure
from bench.payload import STREAM_LABEL, request_body
from bench.procs import Server, StartError, usage
from bench.subjects import BENCH, HEADERS, ServerSpec, Subject


def new_server(spec: ServerSpec, logs: Path, cwd: Path) -> Server:
    """A stopped Server for `spec`, logging to logs/KEY.log."""
    return Server(spec.argv, spec.env, logs / f"{spec.key}.log", cwd)


def start_all(
    specs: Sequence[ServerSpec], servers: Mapping[str, Server], tries: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """Start server KEY tries[KEY] times, interleaved (A B A B), timing spawn to health; the last stays up."""
    info: dict[str, dict[str, Any]] = {
        s.key: {"title": s.title, "status": "ok", "startup_s": []} for s in specs
    }
    for attempt in range(max(tries.values(), default=0)):
        for spec in specs:
            entry, count = info[spec.key], tries[spec.key]
            if entry["status"] != "ok" or attempt >= count:
                continue
            print(f"  start {spec.title} ({attempt + 1}/{count})", end="", flush=True)
            try:
                seconds = servers[spec.key].start(spec.health_url, spec.start_timeout, HEADERS)
            except StartError as exc:
                print(": FAILED", flush=True)
                entry.update(status="failed", error=f"start-up: {exc}")
                continue
            print(f": {seconds:.2f} s", flush=True)
            entry["startup_s"].append(seconds)
            if attempt < count - 1:
                servers[spec.key].stop()
    time.sleep(1.0)  # let the last starts settle before reading idle RSS
    for spec in specs:
        entry = info[spec.key]
        if entry["status"] == "ok":
            entry["startup_median_s"] = statistics.median(entry["startup_s"])
            entry["rss_idle_mb"] = _rss_mb(servers[spec.key])
    return info


def _rss_mb(server: Server) -> float | None:
    return usage(server.pid).rss_bytes / 2**20 if server.alive() else None


def rss_after(servers: Mapping[str, Server], info: dict[str, dict[str, Any]]) -> None:
    """Record each live server's RSS after the load."""
    for key, server in servers.items():
        if info[key]["status"] == "ok":
            info[key]["rss_after_mb"] = _rss_mb(server)


def probe(subject: Subject, spec: ServerSpec) -> tuple[str | None, dict[str, str]]:
    """Ask once (twice for a cache hit) and check the answer; (what is wrong or None, guardproxy headers)."""
    body = json.dumps(subject.body()).encode()
    try:
        reply = measure.post(spec.port, body, HEADERS, path=subject.path)
        if subject.cache_hit:
            reply = measure.post(spec.port, body, HEADERS, path=subject.path)
    except OSError as exc:
        return f"probe: {exc}", {}
    seen = {k: v for k, v in reply.headers.items() if k.startswith("x-guardproxy-")}
    problem = measure.check(reply, subject.stream)
    if problem is None and subject.cache_hit and seen.get("x-guardproxy-cache") != "hit":
        got = seen.get("x-guardproxy-cache")
        problem = f"the second identical request was not a cache hit (x-guardproxy-cache: {got})"
    return (f"probe: {problem}" if problem else None), seen


def ttfb(specs: Mapping[str, ServerSpec], logs: Path, cwd: Path, samples: int) -> dict[str, Any]:
    """Streaming time to first content: the mock's own, guardproxy passthrough, guardproxy buffered."""
    spec = specs["gp_stream"]
    server = new_server(spec, logs, cwd)
    targets: dict[str, tuple[int, str]] = {
        "upstream (mock) direct": (specs["mock"].port, STREAM_LABEL),
        "guardproxy passthrough": (spec.port, "passthrough"),
        "guardproxy buffered": (spec.port, "buffered"),
    }
    paths: dict[str, dict[str, Any]] = {name: {"status": "ok"} for name in targets}
    try:
        server.start(spec.health_url, spec.start_timeout, HEADERS)
    except StartError as exc:
        for name in ("guardproxy passthrough", "guardproxy buffered"):
            paths[name] = {"status": "failed", "error": f"start-up: {exc}"}
    conns = {
        name: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for name, (port, _) in targets.items()
    }
    bodies = {
        name: json.dumps(request_body(stream=True, structured=False, model=m)).encode()
        for name, (_, m) in targets.items()
    }
    timings: dict[str, list[measure.StreamTiming]] = {name: [] for name in targets}
    try:
        for i in range(samples + 1):  # the first pass only warms up and checks
            for name in targets:
                if paths[name]["status"] != "ok":
                    continue
                try:
                    timing = measure.stream_timing(conns[name], bodies[name], HEADERS)
                except (OSError, RuntimeError, http.client.HTTPException) as exc:
                    paths[name] = {"status": "failed", "error": str(exc)}
                    continue
                if i == 0 and name == "guardproxy passthrough" and timing.outcome != "streaming":
                    paths[name] = {
                        "status": "missing",
                        "error": f"x-guardproxy-outcome is {timing.outcome!r}, "
                        "not 'streaming': passthrough does not stream",
                    }
                elif i > 0:
                    timings[name].append(timing)
    finally:
        for conn in conns.values():
            conn.close()
        server.stop()
    for name, got in timings.items():
        if paths[name]["status"] == "ok" and got:
            paths[name].update(
                samples=len(got),
                outcome=got[-1].outcome,
                headers_ms=statistics.median(t.headers_s for t in got) * 1000,
                first_content_ms=statistics.median(t.first_content_s for t in got) * 1000,
                total_ms=statistics.median(t.total_s for t in got) * 1000,
            )
    base, passthrough = paths["upstream (mock) direct"], paths["guardproxy passthrough"]
    added = None
    if base.get("first_content_ms") is not None and passthrough.get("first_content_ms") is not None:
        added = passthrough["first_content_ms"] - base["first_content_ms"]
    return {"paths": paths, "passthrough_added_first_content_ms": added}


MARK = "BENCH_VALIDATORS "


def validators(cwd: Path, timeout: float) -> dict[str, Any]:
    """bench/bench_validators.py's figures (its `run()`), in a child process; its table is echoed."""
    if not (BENCH / "bench_validators.py").exists():
        return {"status": "absent"}
    code = (
        "import json; from bench import bench_validators as b; "
        f"r = b.run(); print({MARK!r} + json.dumps(r, default=str))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"no result within {timeout:.0f} s"}
    figures = None
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            figures = json.loads(line[len(MARK) :])
        else:
            print("  " + line)
    if done.returncode != 0 or figures is None:
        return {"status": "failed", "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return {"status": "ok", "figures": figures}
