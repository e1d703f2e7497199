"""Issue 14, item 2: validation has a budget and never stalls the proxy; item 3a: the schema cache is
bounded by bytes.

The attacks are the ones reproduced against main: `uniqueItems` over 20,000 objects (325 s of a
frozen proxy) and a recursive `anyOf` with two array branches over an output nested deep (exponential).
The mock deployment echoes the user's message, so the attacker scripts the model's output.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.servers import ServerThread
from validators import Budget, SchemaCache, ValidationBudgetExceeded
from validators._fastchecks import all_unique, equal
from validators.budget import BudgetSlice

BUDGET_MS = 500
SLACK_S = 4.0  # generous: the machine is shared; the bound proves "budget, not minutes"
STALL_BOUND_S = 1.0  # the issue asks for 100 ms; asserted loosely against flakiness, printed exactly

UNIQUE_SCHEMA = {
    "type": "object",
    "properties": {"xs": {"type": "array", "uniqueItems": True, "items": {"type": "object"}}},
    "required": ["xs"],
}
# Two array branches at every level: each failing level tries both, 2^depth in all.
NESTED_SCHEMA = {
    "$defs": {
        "n": {
            "anyOf": [
                {"type": "array", "items": {"$ref": "#/$defs/n"}},
                {"type": "array", "items": {"$ref": "#/$defs/n"}},
                {"type": "integer"},
            ]
        }
    },
    "type": "object",
    "properties": {"n": {"$ref": "#/$defs/n"}},
    "required": ["n"],
}


def nested_output(depth: int) -> str:
    return json.dumps({"n": json.loads("[" * depth + '"leaf"' + "]" * depth)})


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": nested_output(22)}}


def unique_output(count: int) -> str:
    return json.dumps({"xs": [{"id": i, "v": f"item {i}"} for i in range(count)]})


def chat_body(alias: str, output: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": alias, "messages": [{"role": "user", "content": output}]}
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    return body


@pytest.fixture
def proxy(make_config: Callable[..., Path], start_proxy: Callable[[Path], ServerThread]) -> ServerThread:
    chain = {"deployments": [{"model": "mock/echo"}, {"model": "mock/echo", "mock": {"latency_ms": 1}}]}
    keys = [{"name": "attacker", "key": "sk-attacker"}, {"name": "victim", "key": "sk-victim"}]
    config = make_config(
        {
            "m": chain,
            "s": {"policy": "no-reask", "deployments": [{"model": "mock/echo"}]},
            "p": {
                "policy": "relay",
                "deployments": [{"model": "mock/static", "mock": {"tool_calls": [CALL]}}],
            },
        },
        policies={
            "no-reask": {"validators": [], "on_fail": ["repair", "reject"]},
            "relay": {
                "stream": "passthrough",
                "validators": [{"type": "tool_calls"}],
                "on_fail": ["repair", "reject"],
            },
        },
        auth={"keys": keys},
        limits={"validation_ms": BUDGET_MS},
        cache={"backend": "none"},
    )
    return start_proxy(config)


class LoopProbe:
    """A task on the proxy's own event loop that records how late its 5 ms sleeps wake up."""

    def __init__(self, server: ServerThread) -> None:
        self.loop = server.server.servers[0].get_loop()
        self.worst = 0.0
        self._running = True
        self._future = asyncio.run_coroutine_threadsafe(self._run(), self.loop)

    async def _run(self) -> None:
        while self._running:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - start - 0.005)

    def stop(self) -> float:
        self._running = False
        self._future.result(timeout=5)
        return self.worst


class Victim:
    """Another tenant polling /health and sending normal chats while the attack runs."""

    def __init__(self, server: ServerThread) -> None:
        self.url = server.url
        self.health: list[float] = []
        self.chats: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        headers = {"authorization": "Bearer sk-victim"}
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                start = time.perf_counter()
                assert http.get(self.url + "/health").status_code == 200
                self.health.append(time.perf_counter() - start)
                start = time.perf_counter()
                r = http.post(
                    self.url + "/v1/chat/completions", json=chat_body("m", "hello", None), headers=headers
                )
                self.chats.append((r.status_code, time.perf_counter() - start))
                time.sleep(0.01)

    def __enter__(self) -> Victim:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture
def attack(proxy: ServerThread) -> Iterator[Callable[[str, dict[str, Any]], tuple[httpx.Response, float]]]:
    # Warm up first: the first request pays one-off costs that are not validation (lazy imports,
    # litellm's first stream, the first worker thread); the stall measured is the attack's own.
    warm = httpx.post(
        proxy.url + "/v1/chat/completions",
        json=chat_body("m", unique_output(3_000), UNIQUE_SCHEMA),
        headers={"authorization": "Bearer sk-victim"},
        timeout=60,
    )
    assert warm.status_code == 200

    def run(output: str, schema: dict[str, Any], alias: str = "m") -> tuple[httpx.Response, float]:
        probe = LoopProbe(proxy)
        with Victim(proxy) as victim:
            time.sleep(0.05)
            start = time.perf_counter()
            r = httpx.post(
                proxy.url + "/v1/chat/completions",
                json=chat_body(alias, output, schema),
                headers={"authorization": "Bearer sk-attacker"},
                timeout=120,
            )
            took = time.perf_counter() - start
            time.sleep(0.05)
        stall = probe.stop()
        worst_health = max(victim.health)
        worst_chat = max(t for _, t in victim.chats)
        print(
            f"\nattack took {took * 1000:.0f} ms; worst loop stall {stall * 1000:.1f} ms; worst /health"
            f" {worst_health * 1000:.1f} ms; worst victim chat {worst_chat * 1000:.1f} ms"
            f" ({len(victim.chats)} chats)"
        )
        assert victim.chats and all(status == 200 for status, _ in victim.chats)
        assert stall < STALL_BOUND_S and worst_health < STALL_BOUND_S and worst_chat < STALL_BOUND_S
        return r, took

    yield run


def test_unique_items_over_20000_objects_is_linear(attack: Any) -> None:
    r, took = attack(unique_output(20_000), UNIQUE_SCHEMA)
    assert r.status_code == 200, r.text
    assert took < BUDGET_MS / 1000 + SLACK_S


def test_duplicate_among_objects_is_found(attack: Any) -> None:
    output = json.loads(unique_output(500))
    output["xs"].append({"v": "item 7", "id": 7})  # same object, other key order
    r, took = attack(json.dumps(output), UNIQUE_SCHEMA, "s")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "output_validation_failed"
    assert "items must be unique" in r.text


def test_exponential_any_of_ends_at_the_budget_without_blame(attack: Any, proxy: ServerThread) -> None:
    r, took = attack(nested_output(22), NESTED_SCHEMA)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("guardrail_violation", "validation_budget_exceeded")
    assert "limits.validation_ms" in error["message"]
    assert r.headers.get("x-should-retry") == "false"
    assert took < BUDGET_MS / 1000 + SLACK_S
    # No blame: the same deployment keeps serving (no cooldown after repeated attacks), first try.
    headers = {"authorization": "Bearer sk-attacker"}
    for _ in range(6):
        again = httpx.post(
            proxy.url + "/v1/chat/completions",
            json=chat_body("m", nested_output(22), NESTED_SCHEMA),
            headers=headers,
            timeout=60,
        )
        assert again.json()["error"]["code"] == "validation_budget_exceeded"
    ok = httpx.post(
        proxy.url + "/v1/chat/completions", json=chat_body("m", "hi", None), headers=headers, timeout=30
    )
    assert ok.status_code == 200
    assert ok.headers["x-guardproxy-attempts"] == "1"
    assert ok.headers["x-guardproxy-outcome"] == "pass"


def test_passthrough_tool_calls_end_at_the_budget(proxy: ServerThread) -> None:
    body = {
        **chat_body("p", "call f", None),
        "stream": True,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": NESTED_SCHEMA}}],
    }
    start = time.perf_counter()
    r = httpx.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": "Bearer sk-attacker"},
        timeout=60,
    )
    assert time.perf_counter() - start < BUDGET_MS / 1000 + SLACK_S
    assert r.status_code in (200, 422)
    assert "limits.validation_ms" in r.text and '"validator":"budget"' in r.text.replace(" ", "")
    assert '"arguments"' not in r.text  # the unchecked tool call is withheld


def test_budget_stops_jsonschema_and_the_fast_check() -> None:
    compiled = SchemaCache().get(NESTED_SCHEMA)
    value = json.loads(nested_output(30))
    for run in (compiled.is_valid, compiled.errors):
        budget = Budget(50)
        start = time.perf_counter()
        with pytest.raises(ValidationBudgetExceeded), budget.running():
            run(value)
        assert time.perf_counter() - start < 5
        assert budget.exhausted


def test_a_slice_is_not_the_whole_budget() -> None:
    compiled = SchemaCache().get(NESTED_SCHEMA)
    budget = Budget(10_000)
    with pytest.raises(BudgetSlice), budget.running(0.01):
        compiled.is_valid(json.loads(nested_output(30)))
    assert not budget.exhausted


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([1.0, 0.0, -1.0, 2.5])
    | st.sampled_from("ab"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xyz"), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(JSON, max_size=8))
def test_hashed_unique_items_agrees_with_pairwise_equality(items: list[Any]) -> None:
    pairwise = all(not equal(items[i], items[j]) for i in range(len(items)) for j in range(i + 1, len(items)))
    assert all_unique(items) == pairwise


def test_schema_cache_is_bounded_by_bytes() -> None:
    cache = SchemaCache(maxsize=10_000, max_bytes=2 * 1024 * 1024)
    sizes = []
    for i in range(40):
        schema = {
            "type": "object",
            "description": f"{i}" + "d" * 20_000,
            "properties": {f"p{i}": {"type": "string"}},
        }
        cache.get(schema)
        sizes.append(cache.bytes)
    assert max(sizes) <= cache.max_bytes
    assert cache.evictions > 0
    assert 0 < len(cache) < 40
    huge = {"type": "object", "description": "h" * 400_000}
    cache.get(huge)  # larger than the whole bound: compiled for this use, never kept
    assert cache.bytes <= cache.max_bytes and len(cache) > 0
