"""Fixtures of the fault-injection suite: one mock upstream per session, proxies per transport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    MOCK_OPTIONS,
    RELAY_POLICY,
    FaultProxy,
    MockUpstream,
    deployment,
    write_config,
)
from tests.servers import free_port

TRANSPORTS = ["direct", "litellm"]
MALFORMED = ["html", "truncated", "wrong_content_type"]


@pytest.fixture(scope="session")
def mock() -> Iterator[MockUpstream]:
    server = MockUpstream(MOCK_OPTIONS).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_state(request: pytest.FixtureRequest) -> None:
    """Every test starts with zeroed mock counters (script steps restart at their first) and no pauses."""
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").sleeps.pauses.clear()
    if "mock" in request.fixturenames:
        request.getfixturevalue("mock").reset()


def shared_models(mock: MockUpstream, transport: str) -> dict[str, Any]:
    """One alias per fault; fault deployments have short per-attempt timeouts."""

    def dep(label: str, timeout: float = 5.0) -> dict[str, Any]:
        return deployment(mock, label, transport, timeout)

    def alias(*deps: dict[str, Any], policy: str | None = None) -> dict[str, Any]:
        return {"deployments": list(deps), **({"policy": policy} if policy else {})}

    refused = {**dep("ok"), "api_base": f"http://127.0.0.1:{free_port()}/v1"}
    models = {
        "ok": alias(dep("ok")),
        "ra-wait": alias(dep("ra1-then-ok")),
        "ra-long": alias(dep("ra3600"), dep("ra3600b")),
        "flaky500": alias(dep("e500-then-ok")),
        "ctx": alias(dep("ctx400"), dep("ok2")),
        "badparam": alias(dep("bad400"), dep("ok2")),
        "badkey": alias(dep("auth401"), dep("ok2")),
        "badkeys": alias(dep("auth401"), dep("auth403")),
        "hang": alias(dep("blackhole", 0.4), dep("ok2")),
        "hang-all": alias(dep("blackhole", 0.4), dep("blackhole2", 0.4)),
        "hang-long": alias(
            dep("blackhole", 0.6), dep("blackhole2", 0.6), dep("blackhole3", 0.6), policy="wide"
        ),
        "stall": alias(dep("stall", 0.4), dep("ok2")),
        "cut-early": alias(dep("cut-then-ok")),
        "cut-early-relay": alias(dep("cut-then-ok"), policy="relay"),
        "cut-late": alias(dep("cut-late"), policy="relay"),
        "inband": alias(dep("inband"), dep("ok2")),
        "inband-only": alias(dep("inband")),
        "inband-relay": alias(dep("inband"), policy="relay"),
        "mixed": alias(dep("down503"), dep("blackhole", 0.4), dep("limited429")),
        "refused": alias(refused, dep("ok2")),
        "slow": alias(dep("slow")),
        "slow-relay": alias(dep("slow"), policy="relay"),
        "slow-stream": alias(dep("slow-stream"), policy="relay-plain"),
        "shared": alias(dep("slow-ok")),
        "shared-fail": alias(dep("slow503")),
    }
    for kind in MALFORMED:
        models[f"bad-{kind}"] = alias(dep(kind), dep("ok2"))
        models[f"bad-{kind}-only"] = alias(dep(kind))
    return models


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture(scope="module")
def proxy(
    mock: MockUpstream, transport: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultProxy]:
    """guardproxy with every fault alias, on `transport`; the retry budget and cooldowns are out of reach."""
    folder: Path = tmp_path_factory.mktemp(f"faults-{transport}")
    config = write_config(
        folder,
        shared_models(mock, transport),
        policies={
            "relay": RELAY_POLICY,
            "relay-plain": {"stream": "passthrough", "validators": []},
            "wide": {"max_attempts": 20},
        },
    )
    server = FaultProxy(config)
    # The first call through a transport pays its imports; keep that out of the tests' timeouts.
    assert server.chat("ok").status_code == 200
    yield server
    server.stop()
