"""req/s and p99 through HAProxy for 1, 2 and 3 replicas, and Redis memory per cached answer.

    .venv/bin/python -m tests.cluster.scale      (make cluster-scale)

Guarded requests (auth, policy, the upstream call to the mock, cache store in Redis) at concurrency 32,
half streamed; the load client, HAProxy, Redis and the mock share the machine's cores with the replicas.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from pathlib import Path

from tests.cluster.harness import Cluster, counts, load, p99

TOTAL, CONCURRENCY = 3000, 32


def _redis_info(port: int) -> dict[str, str]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"INFO memory\r\nDBSIZE\r\n")
        time.sleep(0.2)
        raw = s.recv(65536).decode()
    info = dict(line.split(":", 1) for line in raw.splitlines() if ":" in line and not line.startswith("#"))
    info["dbsize"] = raw.rsplit(":", 1)[-1].strip()
    return info


def main() -> None:
    rows = []
    for n in (1, 2, 3):
        with tempfile.TemporaryDirectory() as tmp:
            fleet = Cluster(Path(tmp), replicas=n).start()
            try:
                asyncio.run(load(fleet.url, 300, CONCURRENCY, tag="warm "))  # warm-up
                before = _redis_info(fleet.ports["redis"])
                start = time.perf_counter()
                results = asyncio.run(load(fleet.url, TOTAL, CONCURRENCY, tag=f"scale{n} "))
                seconds = time.perf_counter() - start
                after = _redis_info(fleet.ports["redis"])
                stored = int(after["dbsize"]) - int(before["dbsize"])
                grown = int(after["used_memory"]) - int(before["used_memory"])
                rows.append((n, TOTAL / seconds, p99(results) * 1000, counts(results), stored, grown))
            finally:
                fleet.stop()
    print("| replicas | req/s | p99 ms | statuses | Redis keys added | bytes per key |")
    print("|---|---|---|---|---|---|")
    for n, rps, p, c, stored, grown in rows:
        per = grown / stored if stored else 0
        print(f"| {n} | {rps:.0f} | {p:.0f} | {c} | {stored} | {per:.0f} |")


if __name__ == "__main__":
    main()
