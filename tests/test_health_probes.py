"""`/health/live`, `/health/ready` and the not-ready-first drain of `guardproxy serve` on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO, ConfigFactory
from tests.servers import free_port, serve_process

DELAY = 1.5  # server.drain_delay
GRACE = 3.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    config = {
        "server": {"port": port, "drain_delay": DELAY, "shutdown_grace": GRACE},
        "models": {
            "echo": {"deployments": [{"model": "mock/echo"}]},
            "slow": {"deployments": [{"model": "mock/echo", "mock": {"latency_ms": 2500}}]},
        },
        "cache": {"backend": "none"},
        "policies_dir": str(REPO / "policies"),
        "logging": {"audit_path": None},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with serve_process(path, port) as served:
        yield served


def _ask(url: str, model: str, text: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=30)


def test_sigterm_turns_not_ready_first_serves_through_the_delay_then_drains(served: Any) -> None:
    proc, url = served
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert httpx.get(url + "/health/live").json() == {"status": "ok"}
    ready = httpx.get(url + "/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"config": "ok", "draining": "ok", "cache": "none"}}

    answers: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: answers.append(_ask(url, "slow", "in flight")))
    slow.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)

    not_ready = httpx.get(url + "/health/ready", timeout=2)
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["draining"] == "draining"
    assert httpx.get(url + "/health/live", timeout=2).status_code == 200  # alive: no restart wanted
    fresh = _ask(url, "echo", "new during the delay")  # the load balancer has not noticed yet
    assert fresh.status_code == 200
    assert fresh.json()["choices"][0]["message"]["content"] == "new during the delay"
    assert fresh.headers["connection"] == "close"  # no idle keep-alive left behind

    time.sleep(max(0.0, DELAY + 0.5 - (time.monotonic() - signalled)))
    with pytest.raises(httpx.ConnectError):  # after the delay: no new connections
        httpx.get(url + "/health/live", timeout=2)
    slow.join(GRACE + 5)
    assert answers and answers[0].status_code == 200  # the in-flight request finished
    proc.wait(DELAY + GRACE + 5)
    assert proc.returncode in (0, -signal.SIGTERM)


def test_ready_names_an_unreachable_redis(make_config: ConfigFactory, start_proxy: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = make_config(
        {"echo": {"deployments": [{"model": "mock/echo"}]}},
        cache={"backend": "redis", "url": dead, "secret": "s" * 16},
    )
    server = start_proxy(config)
    answer = httpx.get(server.url + "/health/ready", timeout=5)
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not_ready",
        "checks": {"config": "ok", "draining": "ok", "cache": "redis unreachable"},
    }
    assert httpx.get(server.url + "/health/live").status_code == 200
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_ready_with_a_reachable_redis(
    make_config: ConfigFactory, start_proxy: Any, redis_server: Any
) -> None:
    config = make_config(
        {"echo": {"deployments": [{"model": "mock/echo"}]}},
        cache={"backend": "redis", "url": redis_server.url, "secret": "s" * 16},
    )
    server = start_proxy(config)
    answer = httpx.get(server.url + "/health/ready", timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"]["cache"] == "ok"
