"""`make soak`: thousands of requests through guardproxy onto a mock provider failing 30% of the time.

A `guardproxy mock-server` answers through `flaky` labels (30% of calls fail: 429, 500, a silent
upstream, a cut connection or stream, an HTML body); a `guardproxy serve` process forwards to them
through both transports, buffered and passthrough, streamed and not. Every answer is classified:
valid, a contract error (by status and type/code), an error event ending a stream, or lost (a broken
connection, an invalid 200) / hung (no answer within the client's timeout). Lost and hung must be 0.

    SOAK_N=5000 SOAK_CONCURRENCY=32 .venv/bin/python -m bench.soak
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CONTENT = "soak answer: the quick brown fox jumps over the lazy dog"
FAULTS = [429, 500, "timeout", "cut", "malformed"]
DEADLINE = 5.0
CLIENT_TIMEOUT = DEADLINE + 10  # an answer later than this counts as hung
ALIASES = ["buffered", "relay", "buffered-litellm", "relay-litellm"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _flaky(seed: int) -> dict[str, Any]:
    return {
        "behaviour": "flaky",
        "fault_rate": 0.3,
        "faults": FAULTS,
        "content": CONTENT,
        "retry_after": 0.05,
        "seed": seed,
        "stream_chunk_chars": 6,
    }


def write_configs(folder: Path, mock_port: int, proxy_port: int) -> tuple[Path, Path]:
    """The mock-server's label file and guardproxy's config.yaml."""
    labels = {
        f"flaky-{t}-{i}": _flaky(10 * i + n) for n, t in enumerate(("direct", "litellm")) for i in (1, 2)
    }
    mock_file = folder / "mock.yaml"
    mock_file.write_text(yaml.safe_dump(labels))
    policies = folder / "policies"
    policies.mkdir()
    for shipped in (REPO / "policies").glob("*.yaml"):
        (policies / shipped.name).write_text(shipped.read_text())
    (policies / "relay.yaml").write_text(yaml.safe_dump({"name": "relay", "stream": "passthrough"}))

    def chain(transport: str) -> list[dict[str, Any]]:
        return [
            {
                "model": f"openai/flaky-{transport}-{i}",
                "api_base": f"http://127.0.0.1:{mock_port}/v1",
                "api_key": "sk-soak-not-a-real-key",
                "transport": transport,
                "timeout": 1.0,
            }
            for i in (1, 2)
        ]

    models = {
        "buffered": {"deployments": chain("direct")},
        "relay": {"policy": "relay", "deployments": chain("direct")},
        "buffered-litellm": {"deployments": chain("litellm")},
        "relay-litellm": {"policy": "relay", "deployments": chain("litellm")},
    }
    config = {
        "server": {"port": proxy_port, "max_in_flight": 1024},
        "models": models,
        "retry": {"attempts": 3, "initial_backoff": 0.02, "max_backoff": 0.05, "deadline": DEADLINE},
        "cache": {"backend": "disk", "path": str(folder / "cache")},
        "logging": {"level": "warning", "audit_path": None},
        "policies_dir": str(policies),
    }
    config_file = folder / "config.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return mock_file, config_file


def start(args: list[str], health: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    process = subprocess.Popen(
        [PYTHON, "-m", "proxy", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{' '.join(args)} exited with {process.returncode}")
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{' '.join(args)} did not start")


def footprint(pid: int) -> tuple[int, int]:
    """(open file descriptors, RSS in KiB) of `pid`."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as handle:
        rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
    return fds, rss


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def classify(status: int, headers: httpx.Headers, text: str, stream: bool) -> str:
    """`valid`, `error <status> <type>/<code>`, `error-event <type>/<code>`, or `lost: why`."""
    if status != 200:
        try:
            error = json.loads(text)["error"]
            assert isinstance(error["message"], str) and "type" in error and "code" in error
        except (ValueError, KeyError, TypeError, AssertionError):
            return f"lost: {status} without the error shape"
        return f"error {status} {error['type']}/{error['code']}"
    if not stream:
        try:
            content = json.loads(text)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return "lost: 200 without a completion"
        return "valid" if content == CONTENT else "lost: wrong content"
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    if chunks and "error" in chunks[-1] and "[DONE]" not in events:
        error = chunks[-1]["error"]
        return f"error-event {error.get('type')}/{error.get('code')}"
    if not events or events[-1] != "[DONE]":
        return "lost: stream ended without [DONE] or an error event"
    ids = {c.get("id") for c in chunks}
    text_out = "".join(
        (c.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
        for c in chunks
        if c.get("choices")
    )
    if len(ids) != 1 or text_out != CONTENT or any("error" in c for c in chunks):
        return "lost: invalid stream"
    return "valid"


async def one(client: httpx.AsyncClient, index: int) -> tuple[str, float, int]:
    alias = ALIASES[index % len(ALIASES)]
    stream = index % 3 != 0
    body: dict[str, Any] = {
        "model": alias,
        "messages": [{"role": "user", "content": f"soak request {index}"}],
    }
    if stream:
        body["stream"] = True
    started = time.monotonic()
    try:
        r = await client.post("/v1/chat/completions", json=body, timeout=CLIENT_TIMEOUT)
    except httpx.TimeoutException:
        return "hung", time.monotonic() - started, 0
    except httpx.HTTPError as exc:
        return f"lost: {type(exc).__name__}", time.monotonic() - started, 0
    elapsed = time.monotonic() - started
    attempts = int(r.headers.get("x-guardproxy-attempts") or 0)
    return classify(r.status_code, r.headers, r.text, stream), elapsed, attempts


async def run(url: str, n: int, concurrency: int, first: int = 0) -> list[tuple[str, float, int]]:
    queue = iter(range(first, first + n))
    results: list[tuple[str, float, int]] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:

        async def worker() -> None:
            for index in queue:
                results.append(await one(client, index))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def main() -> int:
    n = int(os.environ.get("SOAK_N", "5000"))
    concurrency = int(os.environ.get("SOAK_CONCURRENCY", "32"))
    folder = Path(tempfile.mkdtemp(prefix="guardproxy-soak-"))
    mock_port, proxy_port = _port(), _port()
    mock_file, config_file = write_configs(folder, mock_port, proxy_port)
    mock_url, url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{proxy_port}"
    mock = start(
        ["mock-server", "--port", str(mock_port), "--config", str(mock_file)], mock_url + "/v1/models"
    )
    proxy = start(["serve", "--config", str(config_file)], url + "/health")
    try:
        # Warm up at full concurrency: imports paid, connection pools at their working size.
        warm = asyncio.run(run(url, 2 * concurrency, concurrency, first=10**7))  # prompts unlike the run's
        httpx.post(mock_url + "/mock/reset")
        footprints = [footprint(proxy.pid)]
        cpu_before = cpu_seconds(proxy.pid)
        started = time.monotonic()
        results = asyncio.run(run(url, n // 2, concurrency))
        footprints.append(footprint(proxy.pid))
        results += asyncio.run(run(url, n - n // 2, concurrency, first=n // 2))
        wall = time.monotonic() - started
        cpu = cpu_seconds(proxy.pid) - cpu_before
        time.sleep(1.0)
        footprints.append(footprint(proxy.pid))
        upstream_calls = sum(httpx.get(mock_url + "/mock/stats").json()["calls"].values())
        metrics = httpx.get(url + "/metrics").text.splitlines()
        in_flight = next(
            float(line.split()[1]) for line in metrics if line.startswith("guardproxy_in_flight ")
        )
    finally:
        for process in (proxy, mock):
            process.send_signal(signal.SIGTERM)
        for process in (proxy, mock):
            process.wait(30)
    report(results, wall, concurrency, upstream_calls, footprints, in_flight, len(warm))
    print(f"  proxy CPU:            {cpu:.1f} s ({cpu / len(results) * 1000:.1f} ms per request)")
    lost = sum(1 for kind, _, _ in results if kind.startswith("lost") or kind == "hung")
    return 1 if lost or in_flight else 0


def report(
    results: list[tuple[str, float, int]],
    wall: float,
    concurrency: int,
    upstream: int,
    footprints: list[tuple[int, int]],
    in_flight: float,
    warmed: int,
) -> None:
    kinds = Counter(kind for kind, _, _ in results)
    latencies = sorted(elapsed for _, elapsed, _ in results)
    n = len(results)
    print(
        f"soak: {n} requests, concurrency {concurrency}, {wall:.1f} s ({n / wall:.0f} req/s), "
        f"30% upstream faults {FAULTS}, after {warmed} warm-up requests"
    )
    print(f"  ended valid:          {kinds.pop('valid', 0)}")
    for kind in sorted(k for k in kinds if not k.startswith("lost") and k != "hung"):
        print(f"  {kind + ':':<44}{kinds[kind]}")
    lost = sum(v for k, v in kinds.items() if k.startswith("lost"))
    print(f"  lost:                 {lost}  {dict((k, v) for k, v in kinds.items() if k.startswith('lost'))}")
    print(f"  hung:                 {kinds.get('hung', 0)}")
    print(
        f"  upstream attempts:    {sum(a for _, _, a in results) / n:.3f} per request (headers), "
        f"{upstream / n:.3f} (mock's count)"
    )
    print(
        f"  latency:              p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(0.99 * (n - 1))] * 1000:.1f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    fds = ", ".join(str(f) for f, _ in footprints)
    rss = ", ".join(f"{r / 1024:.1f}" for _, r in footprints)
    print(f"  proxy open fds:       {fds} (before, half-way, after)")
    print(f"  proxy RSS MiB:        {rss} (before, half-way, after)")
    print(f"  in flight at the end: {in_flight:g}")


if __name__ == "__main__":
    sys.exit(main())
