"""`guardproxy cache stats|clear|prune` on the cache a running server fills, disk and Redis."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.cli import main
from tests.conftest import REPO
from tests.servers import ServerThread


@pytest.fixture
def setup(make_config, start_proxy, upstream):
    def build(cache: dict[str, Any]) -> tuple[Path, ServerThread]:
        dep = {"model": "openai/echo", "api_base": upstream.url + "/v1", "api_key": "sk-up"}
        models = {"echo": {"deployments": [dep]}, "brief": {"policy": "brief", "deployments": [dep]}}
        # another process's `cache clear` reaches a running server within `memory_ttl` (proxy.cache.memory)
        cache = {"memory_ttl": MEMORY_TTL, **cache}
        config = make_config(models, policies={"brief": {"cache": {"ttl": 2}}}, cache=cache)
        return config, start_proxy(config)

    return build


MEMORY_TTL = 0.2


def cache_of(http: httpx.Client, server: ServerThread, model: str, text: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    r = http.post(server.url + "/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.headers["x-guardproxy-cache"]


def cli(capsys: pytest.CaptureFixture[str], config: Path, action: str) -> str:
    assert main(["cache", action, "--config", str(config)]) == 0
    return capsys.readouterr().out


def stats(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, str]:
    lines = cli(capsys, config, "stats").splitlines()
    return dict(line.split(": ", 1) for line in lines)


def test_disk_stats_prune_and_clear(http, setup, capsys, tmp_path):
    config, server = setup({"backend": "disk", "path": str(tmp_path / "cache")})
    assert [cache_of(http, server, m, t) for m, t in [("echo", "a"), ("echo", "b"), ("brief", "c")]] == [
        "miss"
    ] * 3
    stored_at = time.monotonic()  # every entry was written before this
    assert cli(capsys, config, "prune").strip() == "pruned 0 expired entries"
    found = stats(capsys, config)
    assert found["backend"] == "disk" and found["path"] == str(tmp_path / "cache")
    assert found["entries"] == "3" and int(found["bytes"]) > 0 and found["available"] == "True"
    assert found["hit_ratio"] == "unknown" and found["errors"] == "0"  # this process looked nothing up
    out = subprocess.run(  # the real entry point, once
        [sys.executable, "-m", "proxy", "cache", "stats", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "entries: 3" in out.stdout.splitlines(), out.stderr
    time.sleep(max(0.0, stored_at + 2.2 - time.monotonic()))  # the `brief` policy's 2 s TTL passes
    assert cli(capsys, config, "prune").strip() == "pruned 1 expired entries"
    assert stats(capsys, config)["entries"] == "2"
    assert [cache_of(http, server, m, t) for m, t in [("echo", "a"), ("echo", "b"), ("brief", "c")]] == [
        "hit",
        "hit",
        "miss",
    ]
    assert cli(capsys, config, "clear").strip() == "cleared 3 entries"
    assert stats(capsys, config)["entries"] == "0"
    time.sleep(MEMORY_TTL)
    assert cache_of(http, server, "echo", "a") == "miss"  # the running server sees the clear


def test_redis_stats_and_clear(http, setup, capsys, redis_server):
    config, server = setup({"backend": "redis", "url": redis_server.url, "secret": "x" * 16})
    for text in ("a", "b"):
        assert cache_of(http, server, "echo", text) == "miss"
    found = stats(capsys, config)
    assert (found["backend"], found["entries"], found["available"]) == ("redis", "2", "True")
    assert int(found["bytes"]) > 0
    assert cli(capsys, config, "prune").strip() == "pruned 0 expired entries"  # Redis expires by itself
    assert cli(capsys, config, "clear").strip() == "cleared 2 entries"
    assert stats(capsys, config)["entries"] == "0"
    time.sleep(MEMORY_TTL)
    assert cache_of(http, server, "echo", "a") == "miss"
    redis_server.kill()
    down = stats(capsys, config)  # a dead Redis is reported, not a traceback
    assert down["available"] == "False" and down["entries"] == "0" and "error" in down


def test_a_bad_config_is_reported_with_file_and_line(capsys, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("cache:\n  backend: floppy\n")
    assert main(["cache", "stats", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}:2" in err and "backend" in err
