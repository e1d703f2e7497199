"""Issue 14 item 4: deadlines bound the whole answer, not only the gap between chunks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hostile.upstream_attacker import Attacker
from tests.servers import ServerThread

DEADLINE = 2.0
SLACK = 1.5  # loaded CI machine; the attack itself would run for minutes


@pytest.fixture(scope="module")
def attacker() -> Iterator[Attacker]:
    server = Attacker(drip_every=0.5).start()
    yield server
    server.stop()


def _dep(attacker: Attacker, name: str, transport: str) -> dict[str, Any]:
    return {
        "model": f"openai/{name}",
        "api_base": attacker.base,
        "api_key": "sk-attacker",
        "transport": transport,
        "timeout": 30,  # far above the deadline: only the deadline can end these requests
    }


def _post(proxy: ServerThread, alias: str, stream: bool) -> tuple[httpx.Response, float]:
    body = {"model": alias, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    start = time.monotonic()
    response = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=60)
    return response, time.monotonic() - start


def _events(text: str) -> list[Any]:
    return [
        line[6:] if line[6:] == "[DONE]" else json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]


@pytest.mark.parametrize("transport", ["direct", "litellm"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "buffered-sse"])
def test_dripping_upstream_ends_at_the_deadline(
    make_config: Callable[..., Path],
    start_proxy: Callable[..., ServerThread],
    attacker: Attacker,
    transport: str,
    stream: bool,
) -> None:
    """One byte (or one tiny chunk) every 0.5 s: each gap is short, the whole never ends."""
    config = make_config(
        {"drip": {"deployments": [_dep(attacker, "drip", transport)]}},
        retry={"attempts": 1, "deadline": DEADLINE},
    )
    proxy = start_proxy(config)
    response, elapsed = _post(proxy, "drip", stream)
    assert elapsed < DEADLINE + SLACK, elapsed
    if response.headers["content-type"].startswith("application/json"):
        assert response.status_code == 504, response.text
        assert response.json()["error"]["type"] == "timeout_error"
    else:  # a buffered stream that committed to 200 for its keep-alives ends with an error event
        events = _events(response.text)
        assert "[DONE]" not in events and events[-1]["error"]["type"] == "timeout_error"


@pytest.mark.parametrize("transport", ["direct", "litellm"])
@pytest.mark.parametrize(
    ("attack", "limits"),
    [("idle", {"stream_idle_timeout": 1.0}), ("slow-stream", {"stream_max_seconds": 1.5})],
    ids=["idle", "max-duration"],
)
def test_passthrough_stream_that_stalls_or_runs_on_gets_an_error_event(
    make_config: Callable[..., Path],
    start_proxy: Callable[..., ServerThread],
    attacker: Attacker,
    transport: str,
    attack: str,
    limits: dict[str, float],
) -> None:
    """After the first bytes: an error event and no [DONE], at the idle timeout or the maximum duration."""
    config = make_config(
        {attack: {"policy": "relay", "deployments": [_dep(attacker, attack, transport)]}},
        policies={"relay": {"stream": "passthrough", "validators": []}},
        retry={"attempts": 1, "deadline": 30},
        limits=limits,
    )
    proxy = start_proxy(config)
    response, elapsed = _post(proxy, attack, True)
    assert response.status_code == 200
    events = _events(response.text)
    assert "[DONE]" not in events
    assert any(e.get("choices") for e in events if isinstance(e, dict))  # the first words were relayed
    assert events[-1]["error"]["type"] == "timeout_error"
    assert elapsed < max(limits.values()) + SLACK, elapsed


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_passthrough_stream_silent_before_its_first_byte_falls_back(
    make_config: Callable[..., Path],
    start_proxy: Callable[..., ServerThread],
    attacker: Attacker,
    transport: str,
) -> None:
    """A stream whose first chunk never comes is a failed attempt within the deadline: the next answers."""
    held = {"stream": "passthrough", "validators": [{"type": "phrases", "deny": ["x" * 4000]}]}
    drip = {**_dep(attacker, "drip", transport), "timeout": 1.0}  # a tiny chunk every 0.5 s, all held back
    config = make_config(
        {"hang": {"policy": "held", "deployments": [drip, _dep(attacker, "ok", transport)]}},
        policies={"held": held},
        retry={"attempts": 1, "deadline": 2 * DEADLINE},
    )
    proxy = start_proxy(config)
    response, elapsed = _post(proxy, "hang", True)
    assert response.status_code == 200, response.text
    assert _events(response.text)[-1] == "[DONE]"
    assert elapsed < 1.0 + SLACK + 1.0
