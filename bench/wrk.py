"""Drive wrk: a Lua script posting one JSON body, and its summary parsed into numbers."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MARK = "BENCH_RESULT"

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("%s %d %d %.1f %.1f %d %d %d %d %d\\n", "{mark}",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests, seconds, latency percentiles (ms) and error counts."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx/3xx answers

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """The wrk binary, installed with apt-get when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", flush=True)
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True, timeout=300)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, capture_output=True, timeout=300
    )
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still missing after apt-get install")
    return found


def lua_script(body: bytes, headers: Mapping[str, str]) -> str:
    """A wrk script that POSTs `body` with `headers` and prints one parseable result line."""
    text = body.decode()
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    lines = ['wrk.method = "POST"', f"wrk.body = [{eq}[{text}]{eq}]"]
    for name, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    return "\n".join(lines) + "\n" + _DONE.replace("{mark}", MARK)


def parse(stdout: str) -> WrkResult:
    """The result line of `lua_script`'s done() in wrk's output."""
    for line in stdout.splitlines():
        if line.startswith(MARK + " "):
            f = line.split()[1:]
            requests, duration_us = int(f[0]), int(f[1])
            errors = sum(int(x) for x in f[4:9])
            return WrkResult(requests, duration_us / 1e6, float(f[2]) / 1000, float(f[3]) / 1000, errors)
    raise ValueError(f"no {MARK} line in wrk output: {stdout[-400:]!r}")


def run(wrk: str, url: str, script: Path, connections: int, seconds: int, timeout_s: int = 10) -> WrkResult:
    """One wrk run on one thread (the machine has 2 cores; the server needs the other)."""
    argv = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout_s + 20)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return parse(done.stdout)
