"""One measurement each: a checked probe request, a wrk run with CPU accounting, a TTFB sample."""

from __future__ import annotations

import http.client
import json
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs, wrk
from bench.payload import ANSWER


@dataclass(frozen=True)
class Reply:
    """A whole HTTP answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def post(
    port: int,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float = 30.0,
    path: str = "/v1/chat/completions",
) -> Reply:
    """POST `path` on loopback and read the whole answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=dict(headers))
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def sse_content(body: bytes) -> str:
    """The assistant text carried by an SSE chat-completion stream; raises when it did not end in [DONE]."""
    parts, done = [], False
    for line in body.decode().splitlines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        if data == "[DONE]":
            done = True
            continue
        event = json.loads(data)
        if "error" in event:
            raise ValueError(f"error event: {event['error']}")
        for choice in event.get("choices") or ():
            parts.append((choice.get("delta") or {}).get("content") or "")
    if not done:
        raise ValueError("the stream did not end with [DONE]")
    return "".join(parts)


def check(reply: Reply, stream: bool) -> str | None:
    """What is wrong with a subject's answer to the benchmark request, or None."""
    if reply.status != 200:
        return f"HTTP {reply.status}: {reply.body[:300].decode(errors='replace')}"
    try:
        data: Any = {} if stream else json.loads(reply.body)
        if stream:
            content = sse_content(reply.body)
        elif data.get("object") == "response":  # the Responses API: the text of its output messages
            parts = [p for item in data["output"] if item["type"] == "message" for p in item["content"]]
            content = "".join(p["text"] for p in parts if p["type"] == "output_text")
        else:
            content = data["choices"][0]["message"]["content"]
        if json.loads(content) != ANSWER:
            return "the answer's content differs from the mock's document"
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"unreadable answer ({exc}): {reply.body[:200].decode(errors='replace')}"
    return None


def _children_cpu_s() -> float:
    spent = resource.getrusage(resource.RUSAGE_CHILDREN)
    return spent.ru_utime + spent.ru_stime


def load(
    wrk_bin: str,
    url: str,
    script: Path,
    connections: int,
    seconds: int,
    server_pid: int,
    upstream_pid: int | None,
) -> dict[str, Any]:
    """One wrk run, with the server's (and upstream's) CPU per request from /proc deltas taken as wrk ends.

    `other_cores` is what the rest of the machine burned meanwhile (busy CPU minus server, upstream and
    wrk), in cores: a noise gauge, near 0 on a quiet machine. Afterwards it waits for both trees to go
    idle, so a backlog (requests still queued when wrk stopped) never lands in the next run.
    """
    pids = [server_pid] + ([upstream_pid] if upstream_pid else [])
    before = [procs.usage(pid).cpu_s for pid in pids]
    busy_before, wrk_before, began = procs.busy_cpu_s(), _children_cpu_s(), time.perf_counter()
    result = wrk.run(wrk_bin, url, script, connections, seconds)
    after = [procs.usage(pid).cpu_s for pid in pids]
    elapsed = time.perf_counter() - began
    spent = [a - b for a, b in zip(after, before, strict=True)]
    wrk_spent = _children_cpu_s() - wrk_before
    other = procs.busy_cpu_s() - busy_before - sum(spent) - wrk_spent
    row: dict[str, Any] = {
        "requests": result.requests,
        "rps": result.rps,
        "p50_ms": result.p50_ms if result.requests else None,
        "p99_ms": result.p99_ms if result.requests else None,
        "errors": result.errors,
        "cpu_ms_per_req": _per_request(spent[0], result.requests),
        "other_cores": max(0.0, other / elapsed),
        "server_cores": spent[0] / elapsed,  # with wrk's and the upstream's: is the machine saturated?
        "wrk_cores": wrk_spent / elapsed,
    }
    if upstream_pid:
        row["upstream_cpu_ms_per_req"] = _per_request(spent[1], result.requests)
        row["upstream_cores"] = spent[1] / elapsed
    row["drain_s"] = procs.settle(pids)
    return row


def _per_request(cpu_s: float, requests: int) -> float | None:
    return cpu_s * 1000 / requests if requests else None


@dataclass(frozen=True)
class StreamTiming:
    """Seconds from sending the request to the response headers, the first content, the end."""

    headers_s: float
    first_content_s: float
    total_s: float
    outcome: str | None  # x-guardproxy-outcome, when the server sends one


def stream_timing(conn: http.client.HTTPConnection, body: bytes, headers: Mapping[str, str]) -> StreamTiming:
    """Time one streamed request on a kept-alive connection."""
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body, headers=dict(headers))
    response = conn.getresponse()
    got_headers = time.perf_counter()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    first = None
    while True:
        line = response.readline()
        now = time.perf_counter()
        if not line:
            break
        if first is None and line.startswith(b"data: {") and _has_content(line[len(b"data: ") :]):
            first = now
    ended = time.perf_counter()
    if first is None:
        raise RuntimeError("no content chunk in the stream")
    outcome = response.getheader("x-guardproxy-outcome")
    return StreamTiming(got_headers - started, first - started, ended - started, outcome)


def _has_content(data: bytes) -> bool:
    """True when an SSE chunk carries non-empty assistant text."""
    try:
        choices = json.loads(data).get("choices") or ()
    except ValueError:
        return False
    return any((c.get("delta") or {}).get("content") for c in choices)
