"""Graceful shutdown of a `guardproxy serve` process on SIGTERM: drain, then end open streams properly."""

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

from tests.faults.harness import MockUpstream, deployment, sse_events, unique, write_config
from tests.helpers import wait_until
from tests.servers import free_port, serve_process


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


GRACE = 3.0


@pytest.fixture
def serving(mock: MockUpstream, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    models = {
        "slow": {"deployments": [deployment(mock, "slow-ok", "direct")]},
        "endless": {"policy": "relay-plain", "deployments": [deployment(mock, "slow-stream", "direct")]},
    }
    config = write_config(
        tmp_path,
        models,
        server={"port": port, "shutdown_grace": GRACE, "drain_delay": 0},  # the delay: test_health_probes
        policies={"relay-plain": {"stream": "passthrough", "validators": []}},
    )
    with serve_process(config, port) as served:
        yield served


def test_sigterm_drains_then_ends_open_streams(serving: Any, mock: MockUpstream) -> None:
    """In-flight requests finish; a stream still open near the end of the grace gets an error event."""
    process, url = serving
    stream_events: list[Any] = []
    first_content = threading.Event()
    answers: list[httpx.Response] = []

    def stream() -> None:
        body = {"model": "endless", "messages": [{"role": "user", "content": unique()}], "stream": True}
        with (
            httpx.Client(timeout=30) as client,
            client.stream("POST", url + "/v1/chat/completions", json=body) as r,
        ):
            for line in r.iter_lines():
                if line.startswith("data: "):
                    stream_events.extend(sse_events(line))
                    if '"content"' in line:
                        first_content.set()

    def ask() -> None:
        body = {"model": "slow", "messages": [{"role": "user", "content": "finish me"}]}
        answers.append(httpx.post(url + "/v1/chat/completions", json=body, timeout=30))

    streamer = threading.Thread(target=stream)
    streamer.start()
    assert first_content.wait(20)
    asker = threading.Thread(target=ask)
    asker.start()
    wait_until(lambda: mock.calls("slow-ok") >= 1, 10)

    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: _refused(url + "/health"), 5)  # no new connections once draining

    asker.join(GRACE + 5)
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["choices"][0]["message"]["content"] == "finish me"

    streamer.join(GRACE + 5)
    assert not streamer.is_alive()
    assert "[DONE]" not in stream_events
    last = stream_events[-1]
    assert isinstance(last, dict) and last["error"]["code"] == "shutting_down"
    assert any(isinstance(e, dict) and e.get("choices") for e in stream_events[:-1])

    process.wait(GRACE + 10)
    assert time.monotonic() - signalled < GRACE + 5
    assert process.returncode in (0, -signal.SIGTERM)
    assert mock.wait_disconnects("slow-stream", 1) is not None  # the upstream stream was closed too
