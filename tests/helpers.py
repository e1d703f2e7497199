"""Helpers shared by the test modules: polling instead of fixed sleeps, and requests to a running server."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

__all__ = ["apoll", "ask", "metric_sum", "post", "wait_until"]

POLL_INTERVAL = 0.01


class _Served(Protocol):
    url: str


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, *, interval: float = POLL_INTERVAL) -> Any:
    """Poll `predicate` until it returns something truthy (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


async def apoll(
    predicate: Callable[[], Awaitable[Any] | Any], timeout: float = 5.0, *, interval: float = POLL_INTERVAL
) -> Any:
    """`wait_until` for the event loop: `predicate` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {getattr(predicate, '__name__', predicate)}")
        await asyncio.sleep(interval)


def ask(text: str, model: str = "echo", **fields: Any) -> dict[str, Any]:
    """A chat request body: one user message."""
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


def post(
    http: httpx.Client,
    server: _Served,
    body: dict[str, Any] | list[Any] | str | bytes,
    *,
    key: str | None = None,
    route: str = "chat/completions",
    **headers: str,
) -> httpx.Response:
    """POST `body` (JSON-encoded unless already str/bytes) to `server`'s /v1/`route`, as `key` if given."""
    sent = {"content-type": "application/json", **headers}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    url = f"{server.url}/v1/{route}"
    if isinstance(body, str | bytes):
        return http.post(url, content=body, headers=sent)
    return http.post(url, json=body, headers=sent)


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` in a /metrics page whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
