"""What is measured: the server processes, and the load subjects (a server plus a request shape)."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import configs, litellm_env
from bench.payload import LABEL, MASTER_KEY, NORECORD_LABEL, request_body, responses_body

CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"

BENCH = Path(__file__).resolve().parent
MOCK_CMD_ENV = (
    "BENCH_MOCK_CMD"  # dry runs only: e.g. "{python} /tmp/standin.py --port {port} --config {config}"
)


@dataclass(frozen=True)
class ServerSpec:
    """One process the runner starts: its command, environment and readiness URL path."""

    key: str
    title: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    port: int
    health: str  # a URL path, or "tcp" for a server that speaks no HTTP (redis)
    start_timeout: float

    def url(self, path: str) -> str:
        """http://127.0.0.1:PORT + path."""
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def health_url(self) -> str:
        """What readiness is polled on."""
        return f"tcp://127.0.0.1:{self.port}" if self.health == "tcp" else self.url(self.health)


@dataclass(frozen=True)
class Subject:
    """One row of the table: a server and how it is asked."""

    key: str
    title: str
    server: str
    stream: bool = False
    cache_hit: bool = False
    guardproxy: bool = False
    upstream: str | None = "mock"  # the process behind it, whose CPU is shown apart
    path: str = CHAT_PATH  # or RESPONSES_PATH: the same request in the Responses API's shape
    workers: int = 1  # server processes answering (CPU figures are summed over all of them)
    model: str = LABEL  # the alias asked for (chat completions)

    def body(self) -> dict[str, Any]:
        """The JSON body the load generator posts."""
        if self.path == RESPONSES_PATH:
            return responses_body()
        return request_body(stream=self.stream, model=self.model)

    @property
    def needs(self) -> tuple[str, ...]:
        """Every server process this subject needs running."""
        return tuple(k for k in (self.server, self.upstream, "mock") if k)


SUBJECTS = (
    Subject("1", "mock upstream, direct (floor)", "mock", upstream=None),
    Subject("2", "fixed-JSON Starlette app (cache-hit ceiling)", "fixed"),
    Subject("3", "bare aiohttp forwarding app (forwarding ceiling)", "forward"),
    Subject("3s", "bare aiohttp forwarding app, stream (streaming ceiling)", "forward", stream=True),
    Subject("3L", "bare Starlette app calling litellm.acompletion", "acompletion"),
    Subject("4", "LiteLLM proxy", "litellm"),
    Subject("5", "guardproxy, direct path, json_schema, no cache", "gp_direct", guardproxy=True),
    # subject 5 on the same server, its alias's policy with `record: none` (5 runs the default
    # `record: failures`): the recording cost on the request path (issue 18)
    Subject(
        "5n",
        "guardproxy, direct path, json_schema, record: none",
        "gp_direct",
        guardproxy=True,
        model=NORECORD_LABEL,
    ),
    Subject("5s", "guardproxy, direct path, json_schema, stream", "gp_direct", stream=True, guardproxy=True),
    Subject(
        "5r",
        "guardproxy, direct path, json_schema, /v1/responses",
        "gp_direct",
        path=RESPONSES_PATH,
        guardproxy=True,
    ),
    Subject("5w2", "guardproxy, direct path, --workers 2", "gp_direct2", guardproxy=True, workers=2),
    Subject("6", "guardproxy, litellm path, json_schema, no cache", "gp_litellm", guardproxy=True),
    Subject("7", "guardproxy, disk cache hits", "gp_cache", cache_hit=True, guardproxy=True),
    Subject(
        "7s", "guardproxy, disk cache hits, stream", "gp_cache", stream=True, cache_hit=True, guardproxy=True
    ),
    Subject(
        "7w2",
        "guardproxy, disk cache hits, --workers 2",
        "gp_cache2",
        cache_hit=True,
        guardproxy=True,
        workers=2,
    ),
    Subject(
        "7r", "guardproxy, redis cache hits", "gp_redis", cache_hit=True, guardproxy=True, upstream="redis"
    ),
)

HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def subject_env() -> dict[str, str]:
    """The environment every subject starts with: ours, minus keys and database URLs, telemetry off."""
    drop = ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE", "GUARDPROXY_CONFIG", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.endswith("_API_KEY")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", LITELLM_LOG="ERROR")
    env["PYTHONPATH"] = str(BENCH.parent)  # the repository: `-m bench.<app>`
    return env


def mock_argv(python: str, port: int, config: Path) -> tuple[tuple[str, ...], bool]:
    """`guardproxy mock-server` (or the dry-run override); True when the override is used."""
    override = os.environ.get(MOCK_CMD_ENV)
    if override:
        return tuple(shlex.split(override.format(python=python, port=port, config=config))), True
    cmd = (
        python,
        "-m",
        "proxy",
        "mock-server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config),
    )
    return cmd, False


def servers(work: Path) -> tuple[dict[str, ServerSpec], bool]:
    """Every server process of the run, with fresh ports and configs; True when the mock is a stand-in."""
    python = sys.executable
    env = subject_env()
    ports = {key: free_port() for key in ("mock", "fixed", "forward", "acompletion", "litellm")}
    ports.update({key: free_port() for key in ("redis", "gp_direct", "gp_litellm", "gp_cache", "gp_redis")})
    ports.update({key: free_port() for key in ("gp_stream", "gp_direct2", "gp_cache2")})
    upstream = f"http://127.0.0.1:{ports['mock']}/v1"
    mock_cmd, standin = mock_argv(python, ports["mock"], configs.mock_config(work))
    app_env = {**env, "BENCH_UPSTREAM": upstream}

    def app(name: str, port: int) -> tuple[str, ...]:
        return (python, "-m", f"bench.{name}", "--port", str(port))

    def guardproxy(name: str, config: Path) -> tuple[str, ...]:
        workers = ("--workers", "2") if name.endswith("2") else ()
        return (python, "-m", "proxy", "serve", "--config", str(config), "--port", str(ports[name]), *workers)

    gp = {
        "gp_direct": configs.guardproxy_config(
            work,
            "direct",
            upstream,
            transport="direct",
            cache="none",
            port=ports["gp_direct"],
            norecord_alias=True,
        ),
        "gp_litellm": configs.guardproxy_config(
            work, "litellm", upstream, transport="litellm", cache="none", port=ports["gp_litellm"]
        ),
        "gp_cache": configs.guardproxy_config(
            work, "cache", upstream, transport="direct", cache="disk", port=ports["gp_cache"]
        ),
        "gp_redis": configs.guardproxy_config(
            work,
            "redis",
            upstream,
            transport="direct",
            cache="redis",
            port=ports["gp_redis"],
            redis_url=f"redis://127.0.0.1:{ports['redis']}/0",
        ),
        "gp_stream": configs.stream_config(work, upstream, ports["gp_stream"]),
        "gp_direct2": configs.guardproxy_config(
            work, "direct2", upstream, transport="direct", cache="none", port=ports["gp_direct2"]
        ),
        "gp_cache2": configs.guardproxy_config(
            work, "cache2", upstream, transport="direct", cache="disk", port=ports["gp_cache2"]
        ),
    }
    specs = [
        ServerSpec("mock", "mock-server", mock_cmd, env, ports["mock"], "/mock/stats", 60),
        ServerSpec(
            "fixed", "fixed_app", app("fixed_app", ports["fixed"]), env, ports["fixed"], "/health", 60
        ),
        ServerSpec(
            "forward",
            "forward_app",
            app("forward_app", ports["forward"]),
            app_env,
            ports["forward"],
            "/health",
            60,
        ),
        ServerSpec(
            "acompletion",
            "acompletion_app",
            app("acompletion_app", ports["acompletion"]),
            app_env,
            ports["acompletion"],
            "/health",
            120,
        ),
        ServerSpec(
            "litellm",
            "LiteLLM proxy",
            tuple(litellm_env.command(configs.litellm_config(work, upstream), ports["litellm"])),
            env,
            ports["litellm"],
            "/health/liveliness",
            240,
        ),
        ServerSpec("redis", "redis-server", _redis_argv(ports["redis"]), env, ports["redis"], "tcp", 30),
    ]
    titles = {
        "gp_direct": "guardproxy direct",
        "gp_litellm": "guardproxy litellm",
        "gp_cache": "guardproxy cache",
        "gp_redis": "guardproxy redis cache",
        "gp_stream": "guardproxy stream",
        "gp_direct2": "guardproxy direct, 2 workers",
        "gp_cache2": "guardproxy cache, 2 workers",
    }
    for key, config in gp.items():
        specs.append(ServerSpec(key, titles[key], guardproxy(key, config), env, ports[key], "/health", 120))
    return {spec.key: spec for spec in specs}, standin


def _redis_argv(port: int) -> tuple[str, ...]:
    """A throw-away redis-server: loopback, no persistence."""
    exe = shutil.which("redis-server") or "redis-server"
    return (exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
