"""Three `guardproxy serve` replicas + redis-server + HAProxy on loopback (`make cluster`).

Each check prints its measured numbers (run with `-s`)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.cluster.harness import (
    COOLDOWN_FAILURES,
    COOLDOWN_SECONDS,
    Cluster,
    counts,
    load,
    one_request,
    p99,
    refusals,
)

TOTAL, CONCURRENCY = 3000, 32


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    fleet = Cluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield fleet
    finally:
        fleet.stop()


def _report(title: str, results: list, seconds: float) -> None:
    print(
        f"\n{title}: {len(results)} requests in {seconds:.1f} s ({len(results) / seconds:.0f} req/s),"
        f" p99 {p99(results) * 1000:.0f} ms, final statuses {counts(results)}"
    )


def test_kill_9_of_a_replica_mid_run_loses_no_request(cluster: Cluster) -> None:
    victim = cluster.procs["replica3"]
    start = time.perf_counter()
    results = asyncio.run(
        load(
            cluster.url,
            TOTAL,
            CONCURRENCY,
            on_progress={TOTAL // 3: lambda: victim.signal(signal.SIGKILL)},
            tag="k9 ",
        )
    )
    _report("kill -9 of replica3 at 1/3", results, time.perf_counter() - start)
    assert len(results) == TOTAL  # every request got a final status
    assert sum(r.status == "200 ok" for r in results) >= TOTAL * 0.95
    assert not [r for r in results if r.status.startswith("WRONG")]  # a cut answer is never clean
    assert not victim.alive()
    cluster.start_replica(3)  # back for the next checks
    time.sleep(1.2)  # HAProxy: rise 2 x 500 ms


def test_sigterm_of_a_replica_mid_run_fails_no_request(cluster: Cluster) -> None:
    victim = cluster.procs["replica2"]
    signalled: list[float] = []

    def term() -> None:
        signalled.append(time.monotonic())
        victim.signal(signal.SIGTERM)

    start = time.perf_counter()
    results = asyncio.run(load(cluster.url, TOTAL, CONCURRENCY, on_progress={TOTAL // 4: term}, tag="term "))
    _report("SIGTERM of replica2 at 1/4", results, time.perf_counter() - start)
    assert counts(results) == {"200 ok": TOTAL}, refusals(results)
    assert victim.proc is not None and victim.proc.wait(20) in (0, -signal.SIGTERM)
    print(f"replica2 exited {time.monotonic() - signalled[0]:.1f} s after SIGTERM")
    cluster.start_replica(2)
    time.sleep(1.2)


def test_identical_concurrent_requests_make_one_upstream_call(cluster: Cluster) -> None:
    before = cluster.mock_calls("slow")

    async def burst() -> list:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:
            return await asyncio.gather(
                *(
                    one_request(session, cluster.url, model="dedupe", text="the same question")
                    for _ in range(50)
                )
            )

    results = asyncio.run(burst())
    calls = cluster.mock_calls("slow") - before
    print(f"\n50 identical concurrent requests over 3 replicas: {counts(results)}, upstream calls {calls}")
    assert counts(results) == {"200 ok": 50}, refusals(results)
    assert calls == 1


def test_rpm_limit_is_shared_by_the_fleet(cluster: Cluster) -> None:
    start = time.perf_counter()
    results = asyncio.run(
        load(
            cluster.url,
            300,
            CONCURRENCY,
            key="limited",
            stream_every=0,
            headers={"cache-control": "no-store"},
            tag="rpm ",
        )
    )
    seconds = time.perf_counter() - start
    served = sum(r.status == "200 ok" for r in results)
    print(f"\nrpm 100 key, 300 requests over 3 replicas in {seconds:.1f} s: {counts(results)}")
    assert 95 <= served <= 105, refusals(results, "502")
    assert served + sum(r.status == "429" for r in results) == 300, refusals(results, "502")


def test_failing_deployment_is_cooled_on_every_replica_and_probed_once(cluster: Cluster) -> None:
    async def ask(n: int) -> list:
        async with aiohttp.ClientSession() as session:
            out = []
            for i in range(n):  # one at a time: HAProxy's round robin spreads them over the replicas
                out.append(await one_request(session, cluster.url, model="failing", text=f"f{i}"))
            return out

    before = cluster.mock_calls("fail")
    results = asyncio.run(ask(COOLDOWN_FAILURES * 3))
    calls = cluster.mock_calls("fail") - before
    cooled = [
        cluster.replica_metric(i, 'guardproxy_deployment_cooldown{deployment="failing#0"}') for i in (1, 2, 3)
    ]
    print(
        f"\nfailing deployment, {len(results)} requests: {counts(results)}; upstream calls {calls}"
        f" (cooldown_failures {COOLDOWN_FAILURES}); cooldown gauge per replica {cooled}"
    )
    # each replica learns the fleet's count at its next tick (10 ms while failures are counted): a replica
    # may make one more call in between
    assert COOLDOWN_FAILURES <= calls <= COOLDOWN_FAILURES + 2
    assert cooled == [1.0, 1.0, 1.0]
    time.sleep(COOLDOWN_SECONDS + 0.2)
    end = time.monotonic() + 1.5
    after: list = []
    while time.monotonic() < end:
        after += asyncio.run(ask(6))
    probes = cluster.mock_calls("fail") - before - calls
    print(f"after the cooldown: {len(after)} requests over the fleet, upstream probes {probes}")
    assert probes == 1


def test_policy_edit_is_applied_by_every_replica_within_2_s(cluster: Cluster) -> None:
    stop = threading.Event()
    background: list = []

    def flow() -> None:
        async def run() -> None:
            async with aiohttp.ClientSession() as session:
                n = 0
                while not stop.is_set():
                    background.append(
                        await one_request(session, cluster.url, text=f"flow {n}", stream=n % 2 == 0)
                    )
                    n += 1

        asyncio.run(run())

    flowing = threading.Thread(target=flow)
    flowing.start()
    try:
        time.sleep(0.5)
        cluster.write_policy(["forbidden-word"])
        edited = time.monotonic()
        applied: dict[int, float] = {}

        async def watch() -> None:
            async with aiohttp.ClientSession() as session:
                while len(applied) < 3 and time.monotonic() - edited < 10:
                    for i in (1, 2, 3):
                        if i in applied:
                            continue
                        r = await one_request(
                            session, cluster.replica_url(i), model="guarded", text="a forbidden-word"
                        )
                        if r.status == "422":
                            applied[i] = time.monotonic() - edited
                    await asyncio.sleep(0.05)

        asyncio.run(watch())
    finally:
        stop.set()
        flowing.join(10)
        cluster.write_policy([])
    seconds = {i: round(t, 2) for i, t in sorted(applied.items())}
    print(
        f"\npolicy edit applied after (s) per replica: {seconds};"
        f" background requests meanwhile: {counts(background)}"
    )
    assert set(applied) == {1, 2, 3}
    assert max(applied.values()) <= 2.0
    assert counts(background) == {"200 ok": len(background)}, refusals(background)


def test_workdir_logs_have_no_traceback(cluster: Cluster) -> None:
    for name in ("replica1", "replica2", "replica3"):
        text = Path(cluster.procs[name].log).read_text()
        assert "Traceback" not in text, text[-3000:]
