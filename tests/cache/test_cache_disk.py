"""The disk backend against real diskcache/SQLite in tmp_path: hostile rows, broken storage (the shared
contract is test_cache_backends.py)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import diskcache
import pytest

from proxy.cache import open_backend
from proxy.cache.disk import DiskBackend
from proxy.cache.envelope import Sealer
from proxy.cache.secret import disk_secret

BIG = 50_000  # above diskcache's 32 KiB threshold: stored in a value file, not inline


class Evil:
    """Unpickling this creates a marker directory: proof that a stored pickle was deserialised."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def backend(path: Path, **kwargs: Any) -> DiskBackend:
    return DiskBackend(path, size_limit=kwargs.pop("size_limit", 2**30), **kwargs)


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path / "cache.db") as con:
        return con.execute(sql, args).fetchall()


def value_files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.val"))


@pytest.mark.asyncio
async def test_big_values_live_in_value_files_and_a_closed_cache_misses(tmp_path: Path) -> None:
    """The rest of the round trip is the backend contract (test_cache_backends.py)."""
    cache = backend(tmp_path / "c")
    assert await cache.set("small", b"hello", 60)
    assert await cache.set("big", os.urandom(BIG), 60)
    assert len(value_files(tmp_path / "c")) == 1
    await cache.close()
    assert await cache.get("small") is None  # closed: a miss, not an error


@pytest.mark.asyncio
async def test_directory_is_private(tmp_path: Path) -> None:
    fresh = backend(tmp_path / "a" / "cache")
    assert (tmp_path / "a" / "cache").stat().st_mode & 0o777 == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    existing = backend(loose)
    assert loose.stat().st_mode & 0o777 == 0o700
    await fresh.close()
    await existing.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [10, BIG], ids=["inline", "value-file"])
async def test_a_crafted_pickle_is_never_deserialised_and_is_evicted(tmp_path: Path, size: int) -> None:
    path = tmp_path / "c"
    seen: list[tuple[str, str]] = []
    cache = backend(path, on_error=lambda op, exc: seen.append((op, type(exc).__name__)))
    marker = tmp_path / "pwned"
    plain = diskcache.Cache(str(path))  # what an attacker with write access would use
    plain.set("e:k", [b"x" * size, Evil(marker)])
    assert rows(path, "SELECT mode FROM Cache WHERE key = 'e:k'") == [(diskcache.core.MODE_PICKLE,)]
    assert await cache.get("k") is None
    assert not marker.exists()
    assert "e:k" not in plain
    assert ("tampered", "RefusedValue") in seen and cache.errors == 1
    plain.close()
    await cache.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "value", ["short text", "t" * BIG, 42, 4.5], ids=["text", "text-file", "int", "float"]
)
async def test_rows_of_any_other_type_are_refused(tmp_path: Path, value: Any) -> None:
    cache = backend(tmp_path / "c")
    with diskcache.Cache(str(tmp_path / "c")) as plain:
        plain.set("e:k", value)
    assert await cache.get("k") is None
    assert rows(tmp_path / "c", "SELECT count(*) FROM Cache WHERE key = 'e:k'") == [(0,)]
    await cache.close()


@pytest.mark.asyncio
async def test_a_row_pointing_outside_the_directory_is_neither_read_nor_deleted(tmp_path: Path) -> None:
    path = tmp_path / "c"
    cache = backend(path)
    outside = tmp_path / "outside.val"
    outside.write_bytes(Sealer(disk_secret(path)).seal("k", b"looks valid", time.time()))
    assert await cache.set("k", b"x" * BIG, 60)
    with sqlite3.connect(path / "cache.db") as con:
        con.execute("UPDATE Cache SET filename = ? WHERE key = 'e:k'", ("../outside.val",))
    assert await cache.get("k") is None
    assert outside.exists()
    assert rows(path, "SELECT count(*) FROM Cache WHERE key = 'e:k'") == [(0,)]
    await cache.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("damage", ["garble", "truncate", "empty"])
async def test_a_damaged_value_file_is_a_miss_and_is_evicted(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "c"
    cache = backend(path)
    assert await cache.set("k", os.urandom(BIG), 60)
    (file,) = value_files(path)
    data = file.read_bytes()
    file.write_bytes(
        {"garble": data[:100] + b"\0" * 64 + data[164:], "truncate": data[: BIG // 2], "empty": b""}[damage]
    )
    assert await cache.get("k") is None
    assert rows(path, "SELECT count(*) FROM Cache") == [(0,)]
    assert not file.exists() and cache.errors == 1
    await cache.close()


async def assert_degraded(cache: DiskBackend, expected: dict[str, bytes]) -> None:
    """Every call returns normally; a read is the exact stored value or a miss, never garbage."""
    for key, value in expected.items():
        assert await cache.get(key) in (value, None)
    assert await cache.set("new", b"v", 60) in (True, False)
    assert await cache.try_lock("lock", 1) in (True, False)
    await cache.unlock("lock")
    assert isinstance(await cache.stats(), dict)
    assert isinstance(await cache.prune(), int)
    assert isinstance(await cache.clear(), int)
    await cache.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("damage", ["random", "truncate", "zero-header"])
async def test_a_garbled_database_file_never_raises(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "c"
    first = backend(path)
    stored = {f"k{i}": os.urandom(200 if i % 2 else BIG) for i in range(20)}
    for key, value in stored.items():
        assert await first.set(key, value, 60)
    await first.close()
    db = path / "cache.db"
    data = db.read_bytes()
    db.write_bytes(
        {
            "random": os.urandom(len(data)),
            "truncate": data[: len(data) // 3],
            "zero-header": b"\0" * 100 + data[100:],
        }[damage]
    )
    cache = backend(path)
    if damage == "random":
        assert cache.open_error is not None and cache.errors == 1
        assert (await cache.stats())["available"] is False
        assert await cache.try_lock("x", 1) is True  # nothing to coordinate through: proceed
    await assert_degraded(cache, stored)


@pytest.mark.asyncio
async def test_a_database_garbled_while_open_never_raises(tmp_path: Path) -> None:
    path = tmp_path / "c"
    cache = backend(path)
    stored = {f"k{i}": os.urandom(300) for i in range(50)}
    for key, value in stored.items():
        assert await cache.set(key, value, 60)
    for name in ("cache.db", "cache.db-wal"):
        file = path / name
        if file.exists() and file.stat().st_size:
            with open(file, "r+b") as handle:
                handle.seek(4096)
                handle.write(os.urandom(file.stat().st_size - 4096))
    await assert_degraded(cache, stored)


@pytest.mark.asyncio
async def test_a_locked_database_is_a_fast_skipped_write_and_reads_still_hit(tmp_path: Path) -> None:
    path = tmp_path / "c"
    cache = backend(path)
    assert await cache.set("k", b"before", 60)
    holder = sqlite3.connect(path / "cache.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        started = time.monotonic()
        assert await cache.set("k2", b"v", 60) is False
        assert await cache.try_lock("l", 5) is True  # cannot coordinate: proceed rather than wait
        assert time.monotonic() - started < 2.0  # bounded by the 50 ms busy timeout, not diskcache's 60 s
        assert await cache.get("k") == b"before"  # WAL readers do not wait for the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert cache.errors == 2
    assert await cache.set("k2", b"v", 60) is True
    await cache.close()


@pytest.mark.asyncio
async def test_a_read_only_directory_never_raises(tmp_path: Path, tmpfs: Any) -> None:
    mount = tmpfs.mount(8 * 2**20)
    root = mount if mount is not None else tmp_path / "ro"
    path = root / "c"
    cache = backend(path)
    stored = {"a": b"alpha", "b": os.urandom(BIG)}
    for key, value in stored.items():
        assert await cache.set(key, value, 60)
    await cache.close()  # a mount with files open for writing cannot be remounted read-only
    if mount is not None:
        tmpfs.read_only(mount)
    elif os.geteuid() != 0:
        for file in [path, *path.rglob("*")]:
            os.chmod(file, 0o500 if file.is_dir() else 0o400)
    else:
        pytest.fail("running as root without permission to mount a tmpfs: cannot make a directory read-only")
    reopened = backend(path)
    assert await reopened.set("c", b"gamma", 60) is False
    assert reopened.errors >= 1
    await assert_degraded(reopened, stored)
    await assert_degraded(backend(root / "never-created"), {})


@pytest.mark.asyncio
async def test_a_full_disk_skips_writes_keeps_entries_and_recovers(tmp_path: Path, tmpfs: Any) -> None:
    mount = tmpfs.mount(2 * 2**20)
    if mount is None:
        pytest.fail("no tmpfs available: see test_enospc_on_write_is_a_skipped_write for the simulated case")
    cache = backend(mount / "c")
    info = os.statvfs(mount)
    (mount / "filler").write_bytes(b"\0" * (info.f_bavail * info.f_frsize - 200_000))
    written: dict[str, bytes] = {}
    failed = 0
    for i in range(40):
        value = os.urandom(BIG if i % 2 else 3000)
        if await cache.set(f"k{i}", value, 3600):
            written[f"k{i}"] = value
        else:
            failed += 1
    assert written and failed and cache.errors == failed
    for key, value in written.items():
        assert await cache.get(key) == value
    files = {str(f.relative_to(mount / "c")) for f in value_files(mount / "c")}
    assert files == {
        name for (name,) in rows(mount / "c", "SELECT filename FROM Cache WHERE filename IS NOT NULL")
    }
    (mount / "filler").unlink()
    assert await cache.set("after", b"y" * BIG, 60)
    assert await cache.get("after") == b"y" * BIG
    await cache.close()


@pytest.mark.asyncio
async def test_enospc_on_write_is_a_skipped_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = backend(tmp_path / "c")
    real_open = os.open

    def full_disk(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(file, flags, *args, **kwargs)
        if str(file).endswith(".val") and flags & os.O_EXCL:
            os.close(fd)  # created, then the disk filled up before the first byte
            raise OSError(28, "No space left on device")
        return fd

    monkeypatch.setattr("os.open", full_disk)
    assert await cache.set("k", b"z" * BIG, 60) is False
    monkeypatch.undo()
    assert await cache.get("k") is None
    assert value_files(tmp_path / "c") == [] and cache.errors == 1
    await cache.close()


@pytest.mark.asyncio
async def test_stats_clear_and_prune(tmp_path: Path) -> None:
    path = tmp_path / "c"
    cache = open_backend("disk", path=path, url="", size_limit_mb=5)
    for i in range(5):
        assert await cache.set(f"k{i}", b"x" * (BIG if i == 0 else 10), 60 if i < 3 else 0.05)
    stats = await cache.stats()
    assert stats["entries"] == 5 and stats["bytes"] > BIG and stats["size_limit"] == 5 * 2**20
    orphan = path / "ab" / "cd" / ("0" * 28 + ".val")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a writer killed mid-way")
    await asyncio.sleep(0.1)
    assert await cache.prune() == 2
    assert not orphan.exists()
    assert (await cache.stats())["entries"] == 3
    assert await cache.get("k0") == b"x" * BIG
    assert await cache.clear() == 3
    assert (await cache.stats())["entries"] == 0
    await cache.close()


@pytest.mark.asyncio
async def test_hot_entries_are_refreshed_so_eviction_approximates_lru(tmp_path: Path) -> None:
    path = tmp_path / "c"
    probe = backend(path)
    await probe.close()
    base = (await backend(path).stats())["bytes"]
    cache = backend(path, size_limit=base + 16 * (BIG + 20), refresh_after=0.0)
    for i in range(14):
        assert await cache.set(f"k{i}", bytes([i]) * BIG, 3600)
    ((expire_before, stored_before),) = rows(
        path, "SELECT expire_time, store_time FROM Cache WHERE key='e:k0'"
    )
    assert await cache.get("k0") is not None  # a hit on the oldest entry re-stores it in the background
    for _ in range(200):
        ((stored_after,),) = rows(path, "SELECT store_time FROM Cache WHERE key='e:k0'")
        if stored_after > stored_before:
            break
        await asyncio.sleep(0.01)
    ((expire_after, stored_after),) = rows(path, "SELECT expire_time, store_time FROM Cache WHERE key='e:k0'")
    assert stored_after > stored_before
    assert expire_after == pytest.approx(expire_before, abs=0.5)  # a refresh does not extend the TTL
    for i in range(14, 20):
        assert await cache.set(f"k{i}", bytes([i]) * BIG, 3600)
    assert await cache.get("k0") == bytes([0]) * BIG
    assert await cache.get("k1") is None  # stored after k0 but never read: evicted first
    await cache.close()


@pytest.mark.asyncio
async def test_errors_are_counted_reported_and_logged_once_per_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reported: list[str] = []

    def hook(op: str, exc: BaseException) -> None:
        reported.append(op)
        raise RuntimeError("a broken metrics hook must not break the cache")

    path = tmp_path / "c"
    cache = backend(path, on_error=hook)
    holder = sqlite3.connect(path / "cache.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with caplog.at_level("DEBUG", logger="guardproxy.cache"):
        for _ in range(3):
            assert await cache.set("k", b"v", 60) is False
    holder.execute("ROLLBACK")
    holder.close()
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "set failed" in r.getMessage()]
    debugs = [r for r in caplog.records if r.levelname == "DEBUG" and "set failed" in r.getMessage()]
    assert len(warnings) == 1 and len(debugs) == 2
    assert reported == ["set"] * 3 and cache.errors == 3
    await cache.close()
