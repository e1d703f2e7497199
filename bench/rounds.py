"""The load rounds: a warm-up per subject, then interleaved rounds over every concurrency."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import measure, wrk
from bench.procs import Server
from bench.subjects import ServerSpec, Subject


def duration(planned: int, connections: int, warm_rps: float | None, cap: int) -> int:
    """Seconds for one run: the plan's, stretched (up to `cap`) so each connection completes ~2 requests."""
    if not warm_rps:
        return max(planned, cap)
    return max(planned, min(cap, math.ceil(2 * connections / warm_rps)))


def warm_up(
    subjects: Sequence[Subject],
    specs: Mapping[str, ServerSpec],
    entries: dict[str, Any],
    wrk_bin: str,
    scripts: Mapping[str, Path],
    seconds: int,
) -> dict[str, float]:
    """One discarded run per live subject at concurrency 8; its requests/s, to size the runs."""
    rates: dict[str, float] = {}
    for subject in subjects:
        try:
            result = wrk.run(
                wrk_bin, specs[subject.server].url(subject.path), scripts[subject.key], 8, seconds
            )
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            entries[subject.key].update(status="failed", error=f"warm-up: {exc}")
            continue
        rates[subject.key] = result.rps
        if result.errors:
            entries[subject.key]["warmup_errors"] = result.errors
    return rates


def run_rounds(
    rounds: int,
    seconds: Mapping[int, int],
    cap: int,
    subjects: Sequence[Subject],
    specs: Mapping[str, ServerSpec],
    running: Mapping[str, Server],
    entries: dict[str, Any],
    wrk_bin: str,
    scripts: Mapping[str, Path],
    warm_rps: Mapping[str, float],
) -> None:
    """Every round runs every concurrency over every live subject; odd rounds in reverse order (A B, B A)."""
    live = [s for s in subjects if entries[s.key]["status"] == "ok"]
    for rnd in range(rounds):
        order = live if rnd % 2 == 0 else live[::-1]
        for conc, planned in seconds.items():
            for subject in order:
                entry, server = entries[subject.key], running[subject.server]
                if entry["status"] != "ok":
                    continue
                if not server.alive():
                    entry.update(
                        status="failed", error=f"the server exited during the load (round {rnd + 1})"
                    )
                    continue
                secs = duration(planned, conc, warm_rps.get(subject.key), cap)
                upstream = running[subject.upstream].pid if subject.upstream else None
                url = specs[subject.server].url(subject.path)
                try:
                    row = measure.load(wrk_bin, url, scripts[subject.key], conc, secs, server.pid, upstream)
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                    entry.setdefault("load_errors", []).append(f"round {rnd + 1} c{conc}: {exc}")
                    continue
                row.update(round=rnd, seconds=secs)
                entry["runs"].setdefault(str(conc), []).append(row)
                _progress(rnd, rounds, conc, subject.key, row)


def _progress(rnd: int, rounds: int, conc: int, key: str, row: Mapping[str, Any]) -> None:
    errors = f"  errors {row['errors']}" if row["errors"] else ""
    print(
        f"  round {rnd + 1}/{rounds} c{conc:<3} ({key:>2}) {row['rps']:8.0f} req/s"
        f"  p50 {row['p50_ms'] or 0:7.2f} ms"
        f"  cpu {row['cpu_ms_per_req'] or 0:6.3f} ms/req  other load {row['other_cores']:.2f} cores{errors}",
        flush=True,
    )
