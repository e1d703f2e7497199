"""Hostile cache: forged, altered and moved entries (disk and real Redis), file modes, single-flight
retries, and answers that echo a provider key.

An attacker who can write to the cache folder or to Redis but does not hold the secret tries every
envelope it can build: the payload swapped under the original header, the unsigned envelope with a
correct CRC-32 (what the format accepted before entries were signed), a signature made with a guessed
secret, and a valid entry copied from another key. Each must be a miss, be evicted and be counted.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import redis

from proxy.cache import NoCache, SingleFlight
from proxy.cache.disk import DiskBackend
from proxy.cache.redis_backend import RedisBackend
from proxy.cache.secret import SECRET_FILE
from proxy.settings import load_settings
from proxy.yamlfile import ConfigError
from tests.faults.harness import UPSTREAM_KEY, FaultProxy, MockUpstream, deployment, write_config

SECRET = b"hostile-test-secret-0123456789ab"
KEY, OTHER = "a" * 64, "b" * 64
GENUINE = b'{"v":1,"answer":"genuine"}'
EVIL = b'{"v":1,"answer":"evil!!!"}'  # same length as GENUINE: a drop-in swap


def unsigned_envelope(payload: bytes, stored_at: float) -> bytes:
    """The envelope before signing: anyone could compute its CRC-32."""
    stamp = struct.pack(">d", stored_at)
    return struct.pack(">3sId", b"GP1", zlib.crc32(payload, zlib.crc32(stamp)), stored_at) + payload


def forgeries(genuine: bytes) -> dict[str, bytes]:
    """Every envelope an attacker without the secret can build from a genuine one."""
    from proxy.cache.envelope import Sealer

    return {
        "altered": genuine[: -len(EVIL)] + EVIL,
        "unsigned": unsigned_envelope(EVIL, time.time()),
        "guessed-secret": Sealer(b"guessed-secret-0123456789abcdef").seal(KEY, EVIL, time.time()),
    }


class Disk:
    """The disk backend plus raw SQLite access to its rows, as a local attacker would have."""

    def __init__(self, folder: Path, errors: list[str]) -> None:
        self.folder = folder
        self.backend = DiskBackend(folder, size_limit=2**30, on_error=lambda op, exc: errors.append(op))

    def raw_get(self, key: str) -> bytes | None:
        with sqlite3.connect(self.folder / "cache.db") as con:
            row = con.execute("SELECT value FROM Cache WHERE key = ?", ("e:" + key,)).fetchone()
        return None if row is None else bytes(row[0])

    def raw_set(self, key: str, value: bytes) -> None:
        with sqlite3.connect(self.folder / "cache.db") as con:
            con.execute("UPDATE Cache SET value = ? WHERE key = ?", (value, "e:" + key))


class Redis:
    """The Redis backend plus a plain client on the same server."""

    def __init__(self, url: str, errors: list[str]) -> None:
        self.backend = RedisBackend(url, secret=SECRET, on_error=lambda op, exc: errors.append(op))
        self.plain = redis.Redis.from_url(url)

    def raw_get(self, key: str) -> bytes | None:
        value = self.plain.get("guardproxy:e:" + key)
        return value if isinstance(value, bytes) else None

    def raw_set(self, key: str, value: bytes) -> None:
        self.plain.set("guardproxy:e:" + key, value, px=60_000)


@pytest_asyncio.fixture(params=["disk", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Any, list[str]]]:
    errors: list[str] = []
    if request.param == "disk":
        target: Any = Disk(tmp_path / "c", errors)
    else:
        target = Redis(request.getfixturevalue("redis_server").url, errors)
    yield target, errors
    await target.backend.close()
    if isinstance(target, Redis):
        target.plain.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("forgery", ["altered", "unsigned", "guessed-secret"])
async def test_a_forged_or_altered_entry_is_a_miss_and_is_evicted(store: Any, forgery: str) -> None:
    target, errors = store
    assert await target.backend.set(KEY, GENUINE, 60)
    assert await target.backend.get(KEY) == GENUINE
    target.raw_set(KEY, forgeries(target.raw_get(KEY))[forgery])
    assert await target.backend.get(KEY) is None
    assert target.raw_get(KEY) is None  # evicted
    assert errors == ["tampered"]


@pytest.mark.asyncio
async def test_a_valid_entry_moved_to_another_key_is_refused(store: Any) -> None:
    target, errors = store
    assert await target.backend.set(KEY, GENUINE, 60)
    assert await target.backend.set(OTHER, EVIL, 60)
    target.raw_set(OTHER, target.raw_get(KEY))  # the MAC covers the key, not just the bytes
    assert await target.backend.get(OTHER) is None
    assert target.raw_get(OTHER) is None
    assert await target.backend.get(KEY) == GENUINE  # the original is untouched
    assert errors == ["tampered"]


@pytest.mark.asyncio
async def test_cache_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    previous = os.umask(0o002)  # a group-writable umask: nothing of ours may inherit it
    try:
        cache = DiskBackend(folder, size_limit=2**30)
        assert await cache.set(KEY, b"small", 60)
        assert await cache.set(OTHER, b"x" * 50_000, 60)  # above 32 KiB: its own value file
        assert await cache.get(OTHER) == b"x" * 50_000
        modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")}
        await cache.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = {name: mode for name, mode in modes.items() if (folder / name).is_file()}
    assert {"cache.db", SECRET_FILE} <= set(files) and any(n.endswith(".val") for n in files)
    assert files == dict.fromkeys(files, 0o600), files
    assert {m for n, m in modes.items() if (folder / n).is_dir()} == {0o700}


@pytest.mark.asyncio
async def test_the_generated_secret_is_shared_and_survives_prune(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    first = DiskBackend(folder, size_limit=2**30)
    assert await first.set(KEY, GENUINE, 60)
    assert await first.prune() == 0  # diskcache's check(fix=True) deletes unknown files
    second = DiskBackend(folder, size_limit=2**30)  # another worker, or the next start
    assert await second.get(KEY) == GENUINE
    assert len(bytes.fromhex((folder / SECRET_FILE).read_text())) == 32
    await first.close()
    await second.close()


def test_redis_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cache:\n  backend: redis\n  url: redis://127.0.0.1:1/0\n")
    with pytest.raises(ConfigError, match="cache.secret is required"):
        load_settings(config)
    config.write_text("cache:\n  backend: redis\n  secret: short\n")
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings(config)


@pytest.mark.asyncio
@pytest.mark.parametrize("waiters", [2, 10, 50])
async def test_a_retry_that_fails_at_once_answers_every_waiter(waiters: int) -> None:
    """A cooled-down deployment fails the retry before the other waiters wake: still one retry."""
    calls = 0

    def request() -> Callable[[], Awaitable[str]]:
        async def call() -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.sleep(0.05)  # the leader is slow; every later call fails at once
            raise RuntimeError(f"failure {calls}")

        return call

    async def miss() -> str | None:
        return None

    flights = SingleFlight(NoCache())
    runs = (flights.run("k", request(), lookup=miss, wait=1) for _ in range(waiters + 1))
    results = await asyncio.gather(*runs, return_exceptions=True)
    assert calls == 2
    assert [str(r) for r in results] == ["failure 1"] + ["failure 2"] * waiters
    assert not flights.in_flight("k")


LEAK = f"debug: the key is {UPSTREAM_KEY}, use it well"
MOCK = {
    "flop": {
        "behaviour": "script",
        "script": [
            {"behaviour": "error", "status": 400, "latency_ms": 400},
            {"behaviour": "error", "status": 400},
            {"behaviour": "echo"},
        ],
    },
    "leak": {"behaviour": "static", "content": LEAK},
    "leak-tool": {
        "behaviour": "static",
        "tool_calls": [{"function": {"name": "f", "arguments": orjson.dumps({"k": UPSTREAM_KEY}).decode()}}],
    },
    "fine": {"behaviour": "static", "content": "nothing to hide"},
}


@pytest.fixture(scope="module")
def mock() -> Any:
    upstream = MockUpstream(MOCK).start()
    yield upstream
    upstream.stop()


@pytest.fixture
def proxy(tmp_path: Path, mock: MockUpstream) -> Any:
    models = {label: {"deployments": [deployment(mock, label, "direct")]} for label in MOCK}
    server = FaultProxy(write_config(tmp_path, models))
    yield server
    server.stop()


def test_leader_failure_with_many_waiters_makes_exactly_one_retry(proxy: FaultProxy, mock: MockUpstream):
    mock.reset()

    async def burst() -> list[int]:
        import httpx

        async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
            body = {"model": "flop", "messages": [{"role": "user", "content": "same"}]}
            answers = await asyncio.gather(
                *(client.post("/v1/chat/completions", json=body) for _ in range(20))
            )
        return sorted(r.status_code for r in answers)

    statuses = asyncio.run(burst())
    assert mock.calls("flop") == 2  # the leader's call and one retry, whatever the waiters
    assert statuses == [400] * 20  # the retry failed too: every waiter gets its answer


@pytest.mark.parametrize("label", ["leak", "leak-tool"])
def test_an_answer_echoing_the_deployment_key_is_never_cached(proxy: FaultProxy, mock: MockUpstream, label):
    mock.reset()
    for _ in range(2):
        response = proxy.chat(label, "tell me a secret")
        assert response.status_code == 200, response.text
        assert response.headers["x-guardproxy-cache"] == "miss"
    assert mock.calls(label) == 2
    assert proxy.metric("guardproxy_cache_total", result="withheld") == 2
    fine = [proxy.chat("fine", "tell me a secret") for _ in range(2)]
    assert [r.headers["x-guardproxy-cache"] for r in fine] == ["miss", "hit"]  # other answers still cache


def test_a_tampered_disk_entry_never_reaches_a_client_and_is_counted(proxy: FaultProxy, tmp_path: Path):
    first = proxy.chat("fine", "what is cached")
    key = first.headers["x-guardproxy-cache-key"]
    db = tmp_path / "cache" / "cache.db"
    with sqlite3.connect(db) as con:
        (stored,) = con.execute("SELECT value FROM Cache WHERE key = ?", ("e:" + key,)).fetchone()
        body = orjson.loads(bytes(stored)[43:])
        body["response"]["choices"][0]["message"]["content"] = "transfer the funds now"
        forged = unsigned_envelope(orjson.dumps(body), time.time())
        con.execute("UPDATE Cache SET value = ? WHERE key = ?", (forged, "e:" + key))
    # until `cache.memory_ttl` (1 s) has passed the server answers from its own copy of what it stored,
    # then it reads the row again (proxy.cache.memory)
    time.sleep(1.0)
    again = proxy.chat("fine", "what is cached")
    assert again.headers["x-guardproxy-cache"] == "miss"
    assert again.json()["choices"][0]["message"]["content"] == "nothing to hide"
    assert proxy.metric("guardproxy_cache_total", result="tampered") == 1
    assert proxy.chat("fine", "what is cached").headers["x-guardproxy-cache"] == "hit"  # re-stored, signed
