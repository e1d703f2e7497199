"""The disk cache shared by real processes: sharing, locks, single-flight, and `kill -9` of a writer."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from proxy.cache.disk import DiskBackend

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import asyncio, sys
from pathlib import Path
from proxy.cache.disk import DiskBackend

def value(i):
    size = 40000 if i % 3 == 0 else 300
    return (b"%d:" % i * size)[:size]

async def main(path, start):
    cache = DiskBackend(Path(path), size_limit=2**30)
    i = start
    while True:
        if await cache.set("k%d" % i, value(i), 3600):
            sys.stdout.write("%d\\n" % i)
            sys.stdout.flush()
        i += 1

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

FLIGHT = """
import asyncio, os, sys, time
from pathlib import Path
from proxy.cache import SingleFlight
from proxy.cache.disk import DiskBackend

async def main(path, calls_file, go_at):
    cache = DiskBackend(Path(path), size_limit=2**30)
    flights = SingleFlight(cache, poll_interval=0.02)

    async def produce():
        with open(calls_file, "a") as log:
            log.write("%d\\n" % os.getpid())
        await asyncio.sleep(0.3)  # the upstream call
        await cache.set("answer", b"42", 60)
        return b"42"

    async def one():
        hit = await cache.get("answer")
        if hit is not None:
            return hit
        return await flights.run("answer", produce, lookup=lambda: cache.get("answer"), wait=5)

    await asyncio.sleep(max(0.0, go_at - time.time()))
    results = await asyncio.gather(*(one() for _ in range(25)))
    assert results == [b"42"] * 25, results
    await cache.close()
    print("ok")

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def child(code: str, *args: object, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    return subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=env)


def value(i: int) -> bytes:
    size = 40000 if i % 3 == 0 else 300
    return (b"%d:" % i * size)[:size]


def test_kill_9_during_writes_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "c"
    committed: list[int] = []
    rng = random.Random(7)
    for round_ in range(4):
        with child(WRITER, path, round_ * 100_000) as proc:  # closes the pipes
            assert proc.stdout is not None
            target = rng.randint(20, 120)
            lines = 0
            deadline = time.monotonic() + 30
            while lines < target and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                committed.append(int(line))
                lines += 1
            time.sleep(rng.uniform(0, 0.02))  # land the kill anywhere inside a write
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            committed.extend(int(line) for line in proc.stdout.read().split())  # reported before the kill
            assert lines >= target, proc.stderr.read() if proc.stderr else ""
    with sqlite3.connect(path / "cache.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    async def verify() -> None:
        cache = DiskBackend(path, size_limit=2**30)
        for i in committed:
            assert await cache.get(f"k{i}") == value(i), i
        await cache.prune()  # removes value files of writes that died before their commit
        with sqlite3.connect(path / "cache.db") as con:
            known = {name for (name,) in con.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")}
        assert {str(f.relative_to(path)) for f in path.rglob("*.val")} == known
        assert cache.errors == 0
        await cache.close()

    asyncio.run(verify())


@pytest.mark.asyncio
async def test_entries_and_locks_are_shared_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "c"
    cache = DiskBackend(path, size_limit=2**30)
    with child(WRITER, path, 0) as writer:  # closes the pipes
        assert writer.stdout is not None
        seen = [int(writer.stdout.readline()) for _ in range(30)]
        writer.kill()
        writer.wait(timeout=10)
    for i in seen:
        assert await cache.get(f"k{i}") == value(i)

    probe = "import asyncio, sys; from pathlib import Path; from proxy.cache.disk import DiskBackend\n"
    probe += "print(asyncio.run(DiskBackend(Path(sys.argv[1]), size_limit=2**30).try_lock('job', 30)))"
    assert await cache.try_lock("job", 30)
    out, _ = child(probe, path).communicate(timeout=30)
    assert out.split() == [b"False"]
    await cache.unlock("job")
    out, _ = child(probe, path).communicate(timeout=30)
    assert out.split() == [b"True"]
    await cache.close()


def test_single_flight_across_two_processes_makes_one_call(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    calls.touch()
    go_at = time.time() + 1.5  # both processes start their 25 requests together
    procs = [child(FLIGHT, tmp_path / "c", calls, go_at) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.split() == [b"ok"], err.decode()
    assert len(calls.read_text().split()) == 1
