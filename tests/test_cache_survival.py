"""A broken cache never breaks a request: garbled files, read-only or full disk, Redis killed or stalled.

Each case goes through the real server and checks that every request still gets the right 200 answer,
quickly, and that the failure shows in `guardproxy_cache_total` (`error` for a skipped write, `miss`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cache.conftest import Tmpfs
from tests.servers import ServerThread

BIG = 40_000  # answers above diskcache's 32 KiB threshold live in value files


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Tmpfs]:
    mounter = Tmpfs(tmp_path)
    yield mounter
    mounter.unmount_all()


@pytest.fixture
def build(make_config, start_proxy, upstream):
    def make(cache: dict[str, Any]) -> ServerThread:
        dep = {"model": "openai/echo", "api_base": upstream.url + "/v1", "api_key": "sk-up"}
        # the backend is damaged under a running server: no memory tier in front of it
        return start_proxy(make_config({"echo": {"deployments": [dep]}}, cache={"memory_mb": 0, **cache}))

    return make


def text(i: int) -> str:
    return (f"answer {i} " * BIG)[: BIG if i % 2 else 200]


def ask(http: httpx.Client, server: ServerThread, i: int) -> httpx.Response:
    body = {"model": "echo", "messages": [{"role": "user", "content": text(i)}]}
    started = time.monotonic()
    r = http.post(server.url + "/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == text(i)
    assert time.monotonic() - started < 5, "a broken cache must not slow requests down"
    return r


def cache_header(http: httpx.Client, server: ServerThread, i: int) -> str:
    return ask(http, server, i).headers["x-guardproxy-cache"]


def metric(http: httpx.Client, server: ServerThread, result: str) -> float:
    prefix = f'guardproxy_cache_total{{result="{result}"}} '
    lines = [x for x in http.get(server.url + "/metrics").text.splitlines() if x.startswith(prefix)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def garble(file: Path) -> None:
    with open(file, "r+b") as handle:
        size = file.stat().st_size
        handle.seek(min(4096, size // 2) if file.suffix == ".db" else 0)
        handle.write(os.urandom(max(1, size - handle.tell())))


@pytest.mark.parametrize("damage", ["value files", "database", "database, then restart"])
def test_garbled_cache_files_never_fail_a_request(http, build, tmp_path, damage):
    path = tmp_path / "cache"
    server = build({"backend": "disk", "path": str(path)})
    assert [cache_header(http, server, i) for i in range(8)] == ["miss"] * 8
    assert [cache_header(http, server, i) for i in range(8)] == ["hit"] * 8
    files = sorted(path.rglob("*.val")) if damage == "value files" else [path / "cache.db"]
    files += [f for f in (path / "cache.db-wal",) if damage != "value files" and f.exists()]
    assert len(files) >= (4 if damage == "value files" else 1)
    if damage.endswith("restart"):
        server.stop()
        for file in files:
            if file.exists():  # closing checkpoints and removes the WAL
                file.write_bytes(os.urandom(file.stat().st_size))
        server = build({"backend": "disk", "path": str(path)})
    else:
        for file in files:
            garble(file)
    first = [cache_header(http, server, i) for i in range(8)]
    second = [cache_header(http, server, i) for i in range(8)]
    if damage == "value files":
        assert first == ["hit", "miss"] * 4  # small answers live in SQLite, untouched
        assert second == ["hit"] * 8  # the evicted entries were stored again
    elif damage.endswith("restart"):  # a database that cannot be opened: a permanent miss
        assert first == second == ["miss"] * 8
        assert metric(http, server, "error") >= 16  # every skipped write counted (and the failed open)
    assert metric(http, server, "miss") + metric(http, server, "error") >= first.count("miss")


def test_a_read_only_cache_directory_never_fails_a_request(http, build, mounts):
    mount = mounts.mount(16 * 2**20)
    if mount is None:
        pytest.fail("cannot mount a tmpfs here: a read-only directory needs one when running as root")
    server = build({"backend": "disk", "path": str(mount / "cache")})
    assert [cache_header(http, server, i) for i in range(4)] == ["miss"] * 4
    server.stop()  # files open for writing would keep the remount from happening
    mounts.read_only(mount)
    server = build({"backend": "disk", "path": str(mount / "cache")})
    for i in range(6):
        assert cache_header(http, server, i) in ("hit", "miss")  # entries 0-3 may still be readable
    assert [cache_header(http, server, i) for i in (4, 5)] == ["miss", "miss"]  # nothing could be stored
    assert metric(http, server, "error") >= 2
    elsewhere = build({"backend": "disk", "path": str(mount / "never" / "created")})
    assert [cache_header(http, elsewhere, i) for i in range(2)] == ["miss", "miss"]


def test_a_full_disk_never_fails_a_request(http, build, mounts):
    mount = mounts.mount(2 * 2**20)
    if mount is None:
        pytest.fail("cannot mount a tmpfs here: the full-disk case needs one")
    server = build({"backend": "disk", "path": str(mount / "cache")})
    assert cache_header(http, server, 0) == "miss"
    info = os.statvfs(mount)
    (mount / "filler").write_bytes(b"\0" * (info.f_bavail * info.f_frsize - 8192))
    assert [cache_header(http, server, i) for i in range(1, 7)] == ["miss"] * 6
    assert metric(http, server, "error") >= 3  # the large answers could not be written
    assert cache_header(http, server, 0) == "hit"  # what was stored before stays readable
    (mount / "filler").unlink()
    assert [cache_header(http, server, 9) for _ in range(2)] == ["miss", "hit"]  # and writes recover


@pytest.mark.parametrize("fault", ["killed", "stalled"])
def test_redis_failing_mid_run_never_fails_a_request(http, build, redis_server, fault):
    server = build({"backend": "redis", "url": redis_server.url, "secret": "x" * 16})
    assert [cache_header(http, server, 0) for _ in range(2)] == ["miss", "hit"]
    if fault == "killed":
        redis_server.kill()
    else:
        redis_server.pause()
    started = time.monotonic()
    results = [cache_header(http, server, i % 4) for i in range(20)]
    assert results == ["miss"] * 20
    assert time.monotonic() - started < 10  # at most one short timeout, then Redis is skipped
    assert metric(http, server, "error") >= 1
    if fault == "killed":
        redis_server.start()  # an empty Redis on the same port
    else:
        redis_server.resume()
    deadline = time.monotonic() + 10
    while cache_header(http, server, 7) != "hit":  # back in use once the back-off has passed
        assert time.monotonic() < deadline, "the cache never came back after Redis did"
        time.sleep(0.2)
