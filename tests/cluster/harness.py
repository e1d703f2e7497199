"""A guardproxy fleet on loopback: N `guardproxy serve` processes, one redis-server, one mock upstream
(`guardproxy mock-server`) and HAProxy with deploy/haproxy.cfg, on free ports; plus a bounded load client."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import yaml

REPO = Path(__file__).resolve().parents[2]
MOCK = {
    "echo": {"behaviour": "echo", "latency_ms": 5},
    "slow": {"behaviour": "echo", "latency_ms": 1500},
    "fail": {"behaviour": "error", "status": 500},
}
KEYS = {"load": "sk-cluster-load", "limited": "sk-cluster-limited"}
COOLDOWN_FAILURES, COOLDOWN_SECONDS = 6, 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up: {log.read_text()[-2000:]}")


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Cluster:
    workdir: Path
    replicas: int = 3
    drain_delay: float = 2.0
    procs: dict[str, Proc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    # -- set-up --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['haproxy']}"

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mock']}"

    def replica_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[f'replica{i}']}"

    @property
    def policies(self) -> Path:
        return self.workdir / "policies"

    def start(self) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("redis", "mock", "haproxy", *(f"replica{i}" for i in range(1, self.replicas + 1))):
            self.ports[name] = free_port()
        try:
            self._start_redis()
            self._start_mock()
            self._write_config()
            for i in range(1, self.replicas + 1):
                self.start_replica(i)
            self._start_haproxy()
        except BaseException:
            self.stop()  # a replica that failed to start must not leave redis and the mock running
            raise
        return self

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server missing: make cluster installs it"
        argv = [binary, "--port", str(self.ports["redis"]), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"]
        self.procs["redis"] = Proc("redis", argv, self.workdir / "redis.log").start()
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.ports["redis"]), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def _start_mock(self) -> None:
        (self.workdir / "mock.yaml").write_text(yaml.safe_dump(MOCK))
        argv = [sys.executable, "-m", "proxy", "mock-server", "--port", str(self.ports["mock"])]
        argv += ["--config", str(self.workdir / "mock.yaml")]
        self.procs["mock"] = Proc("mock", argv, self.workdir / "mock.log").start()
        _wait(self.mock_url + "/mock/stats", self.procs["mock"].proc, self.procs["mock"].log)  # type: ignore[arg-type]

    def _write_config(self) -> None:
        self.policies.mkdir(exist_ok=True)
        for f in (REPO / "policies").glob("*.yaml"):
            if not f.name.endswith(".cases.yaml"):
                shutil.copy(f, self.policies / f.name)
        self.write_policy([])
        net = {"api_base": self.mock_url + "/v1", "api_key": "sk-up", "transport": "direct", "timeout": 10}
        config = {
            "server": {"drain_delay": self.drain_delay, "shutdown_grace": 5, "max_in_flight": 512},
            "auth": {
                "keys": [
                    {"name": "load", "key": KEYS["load"], "models": ["*"], "admin": True},
                    {"name": "limited", "key": KEYS["limited"], "models": ["*"], "rpm": 100},
                ]
            },
            "models": {
                "echo": {"deployments": [{"model": "openai/echo", **net}]},
                "dedupe": {"deployments": [{"model": "openai/slow", **net}]},
                "failing": {"deployments": [{"model": "openai/fail", **net}]},
                "guarded": {"policy": "cluster", "deployments": [{"model": "openai/echo", **net}]},
            },
            "retry": {
                "attempts": 1,
                "deadline": 20,
                "cooldown_failures": COOLDOWN_FAILURES,
                "cooldown_seconds": COOLDOWN_SECONDS,
            },
            "cache": {
                "backend": "redis",
                "url": f"redis://127.0.0.1:{self.ports['redis']}/0",
                "secret": "cluster-secret-0123456789",
                "scope": "global",
            },
            "logging": {"audit_path": None, "level": "warning"},
            "policies_dir": str(self.policies),
        }
        (self.workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def write_policy(self, deny: list[str]) -> None:
        """The `cluster` policy: deny these words (422), else pass; written atomically (rename)."""
        policy = {
            "name": "cluster",
            "validators": [{"type": "regex", "deny": deny}] if deny else [],
            "on_fail": ["reject"],
            "cache": {"enabled": False},
        }
        tmp = self.policies / ".cluster.yaml.tmp"
        tmp.write_text(yaml.safe_dump(policy))
        tmp.replace(self.policies / "cluster.yaml")

    def start_replica(self, i: int) -> None:
        port = self.ports[f"replica{i}"]
        argv = [sys.executable, "-m", "proxy", "serve", "--config", str(self.workdir / "config.yaml")]
        argv += ["--port", str(port)]
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        proc = self.procs[f"replica{i}"] = Proc(f"replica{i}", argv, self.workdir / f"replica{i}.log", env)
        proc.start()
        _wait(self.replica_url(i) + "/health/ready", proc.proc, proc.log)  # type: ignore[arg-type]

    def _start_haproxy(self) -> None:
        binary = shutil.which("haproxy")
        assert binary, "haproxy missing: make cluster installs it"
        env = {**os.environ, "FRONT_BIND": f"127.0.0.1:{self.ports['haproxy']}"}
        for i in range(1, 4):  # deploy/haproxy.cfg names three replicas; fewer: the rest point at nothing
            port = self.ports.get(f"replica{i}") or free_port()
            env[f"REPLICA{i}"] = f"127.0.0.1:{port}"
        cfg = REPO / "deploy" / "haproxy.cfg"
        argv = [binary, "-db", "-f", str(cfg)]
        self.procs["haproxy"] = Proc("haproxy", argv, self.workdir / "haproxy.log", env).start()
        _wait(self.url + "/health/live", self.procs["haproxy"].proc, self.procs["haproxy"].log)  # type: ignore[arg-type]
        time.sleep(1.2)  # HAProxy's first health checks (rise 2 x 500 ms): every replica up

    def stop(self) -> None:
        for name in ("haproxy", *(n for n in self.procs if n.startswith("replica")), "mock", "redis"):
            if name in self.procs:
                self.procs[name].stop()

    # -- helpers -------------------------------------------------------------------------------

    def mock_calls(self, label: str) -> int:
        return int(httpx.get(self.mock_url + "/mock/stats").json()["calls"].get(label, 0))

    def replica_metric(self, i: int, line_prefix: str) -> float | None:
        text = httpx.get(self.replica_url(i) + "/metrics", headers=_auth("load")).text
        for line in text.splitlines():
            if line.startswith(line_prefix):
                return float(line.rsplit(" ", 1)[1])
        return None


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[key]}"}


# -- the load client -----------------------------------------------------------------------------


@dataclass
class Result:
    status: str  # "200 ok", "200 cut (error)", "503", "error: ClientConnectionError", "WRONG ..."
    latency: float
    detail: bytes = b""  # the start of a non-200 answer's body: who refused, and why


async def one_request(
    session: aiohttp.ClientSession,
    url: str,
    *,
    model: str = "echo",
    text: str,
    stream: bool = False,
    key: str = "load",
    headers: dict[str, str] | None = None,
) -> Result:
    """One chat request; its final status, classified: a clean answer must carry exactly `text`."""
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    start = time.perf_counter()
    try:
        async with session.post(
            url + "/v1/chat/completions",
            data=orjson.dumps(body),
            headers={"content-type": "application/json", **_auth(key), **(headers or {})},
        ) as r:
            raw = await r.read()
            status = r.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Result(f"error: {type(exc).__name__}", time.perf_counter() - start)
    latency = time.perf_counter() - start
    if status != 200:
        return Result(str(status), latency, raw[:300])
    return Result(_classify(raw, stream, text), latency)


def _classify(raw: bytes, stream: bool, text: str) -> str:
    if not stream:
        try:
            content = orjson.loads(raw)["choices"][0]["message"]["content"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return "200 cut (error)"  # a truncated body does not parse: the client sees an error
        return "200 ok" if content == text else "WRONG content"
    parts, done, error = [], False, False
    for line in raw.split(b"\n"):
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            done = True
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            error = True
            continue
        if "error" in event:
            error = True
        for choice in event.get("choices", ()):
            parts.append((choice.get("delta") or {}).get("content") or "")
    if done and not error:
        return "200 ok" if "".join(parts) == text else "WRONG stream content"
    return "200 cut (error)"  # no [DONE], or an error event: an error to any OpenAI client


async def load(
    url: str,
    total: int,
    concurrency: int,
    *,
    model: str = "echo",
    key: str = "load",
    stream_every: int = 2,
    headers: dict[str, str] | None = None,
    on_progress: dict[int, Any] | None = None,
    tag: str = "",
) -> list[Result]:
    """`total` requests, `concurrency` at a time, every `stream_every`-th streamed; `on_progress[n]` is
    called (in a thread) once `n` requests have been answered."""
    results: list[Result] = []
    queue = iter(range(total))
    hooks = dict(on_progress or {})
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            for n in queue:
                stream = stream_every > 0 and n % stream_every == 0
                text = f"{tag}request {n} " + "x" * (n % 7)
                results.append(
                    await one_request(
                        session, url, model=model, text=text, stream=stream, key=key, headers=headers
                    )
                )
                hook = hooks.pop(len(results), None)
                if hook is not None:
                    asyncio.get_running_loop().run_in_executor(None, hook)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def refusals(results: list[Result], status: str | None = None) -> list[bytes]:
    """The bodies of the first few non-200 answers (of `status` only, when given): for assertion messages."""
    return [r.detail for r in results if r.detail and status in (None, r.status)][:5]


def counts(results: list[Result]) -> dict[str, int]:
    return dict(sorted(Counter(r.status for r in results).items()))


def p99(results: list[Result]) -> float:
    ok = sorted(r.latency for r in results)
    return ok[min(len(ok) - 1, int(len(ok) * 0.99))] if ok else 0.0
