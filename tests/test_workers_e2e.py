"""`guardproxy serve --workers 2`: single-flight on one disk cache, and per-key limits shared through Redis,
across the worker processes of one server (issue 20, item 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests import test_cache_processes_e2e as e2e
from tests.test_cache_processes_e2e import ask, burst, calls, write_config

MOCK = e2e.MOCK  # the upstream fixture reads the mock's labels from the test module
serve = e2e.serve  # the fixture: `guardproxy serve` processes, stopped after the test


def test_identical_concurrent_requests_to_two_workers_make_one_upstream_call(tmp_path, upstream, serve):
    config = write_config(tmp_path, upstream, {"backend": "disk", "path": str(tmp_path / "cache")})
    server = serve(config, "--workers", "2").wait_ready()
    warm = asyncio.run(burst([server.url], [ask(f"warm-up {i}") for i in range(20)]))  # both workers up
    assert [r.status_code for r in warm] == [200] * 20
    answers = asyncio.run(burst([server.url], [ask("one call for two workers", "slow")] * 30))
    assert [r.status_code for r in answers] == [200] * 30
    assert len({r.json()["id"] for r in answers}) == 1  # one upstream answer, served by both workers
    assert calls(upstream, "slow") == 1, server.log.read_text()[-1500:]


def _with_keys(config: Path, keys: list[dict[str, Any]]) -> Path:
    data = yaml.safe_load(config.read_text())
    data["auth"] = {"keys": keys}
    config.write_text(yaml.safe_dump(data))
    return config


def test_an_rpm_limit_is_one_budget_for_two_workers_on_redis(tmp_path, upstream, serve, redis_server):
    cache = {"backend": "redis", "url": redis_server.url, "secret": "x" * 16}
    key = "sk-workers-limit-0001"
    config = _with_keys(write_config(tmp_path, upstream, cache), [{"name": "team", "key": key, "rpm": 6}])
    server = serve(config, "--workers", "2").wait_ready()

    async def twelve() -> list[int]:
        headers = {"Authorization": f"Bearer {key}"}
        statuses = []
        for i in range(12):  # a new connection each: uvicorn's workers take turns accepting them
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
                reply = await client.post("/v1/chat/completions", json=ask(f"limited {i}"))
                statuses.append(reply.status_code)
        return statuses

    statuses = asyncio.run(twelve())
    assert statuses.count(200) == 6 and statuses.count(429) == 6, statuses
