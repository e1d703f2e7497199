"""`make bench`: every subject on one mock upstream, interleaved rounds, a table and results/latest.json.

BENCH_QUICK=1 shortens everything (under 3 minutes). For development: BENCH_ONLY=1,2,5 picks subjects,
BENCH_ROUNDS / BENCH_SECONDS override the plan. docs/performance.md describes the method.
"""

from __future__ import annotations

import compileall
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import litellm_env  # noqa: E402
import measure  # noqa: E402
import phases  # noqa: E402
import report  # noqa: E402
import wrk  # noqa: E402
from payload import request_body  # noqa: E402
from procs import Server  # noqa: E402
from subjects import HEADERS, SUBJECTS, ServerSpec, Subject, servers  # noqa: E402

REPO = BENCH.parent
RESULTS = BENCH / "results" / "latest.json"
SCRATCH = REPO / ".bench" / "run"


@dataclass(frozen=True)
class Plan:
    """How long and how often; from the environment."""

    quick: bool
    rounds: int
    seconds: dict[int, int]  # concurrency -> seconds of load per run
    startups: int
    warmup_s: int
    ttfb_samples: int
    only: frozenset[str] | None

    @staticmethod
    def from_env(env: dict[str, str]) -> Plan:
        """BENCH_QUICK, BENCH_ROUNDS, BENCH_SECONDS, BENCH_ONLY."""
        quick = env.get("BENCH_QUICK", "") not in ("", "0")
        seconds = {1: 1, 8: 2, 64: 2} if quick else {1: 4, 8: 5, 64: 5}
        if env.get("BENCH_SECONDS"):
            seconds = dict.fromkeys(seconds, int(env["BENCH_SECONDS"]))
        only = frozenset(env["BENCH_ONLY"].split(",")) if env.get("BENCH_ONLY") else None
        rounds = max(2, int(env.get("BENCH_ROUNDS", 2 if quick else 3)))
        return Plan(quick, rounds, seconds, 3, 1, 20 if quick else 100, only)


def _meta(plan: Plan, standin: bool, litellm_version: str | None) -> dict[str, Any]:
    def out(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO).stdout.strip()
        except OSError:
            return ""

    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": out("git", "rev-parse", "--short", "HEAD"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "litellm": litellm_version,
        "wrk": out("wrk", "--version").splitlines()[0] if shutil.which("wrk") else None,
        "loadavg_before": os.getloadavg(),
        "quick": plan.quick,
        "rounds": plan.rounds,
        "seconds": plan.seconds,
        "startups": plan.startups,
        "mock_standin": standin,
    }


def _selected(plan: Plan) -> list[Subject]:
    return [s for s in SUBJECTS if plan.only is None or s.key in plan.only or s.key == "1"]


def _scripts(subjects: list[Subject], work: Path) -> dict[str, Path]:
    scripts = {}
    for subject in subjects:
        path = work / f"wrk-{subject.key}.lua"
        path.write_text(wrk.lua_script(json.dumps(request_body(stream=subject.stream)).encode(), HEADERS))
        scripts[subject.key] = path
    return scripts


def _load_rounds(
    plan: Plan,
    subjects: list[Subject],
    specs: dict[str, ServerSpec],
    running: dict[str, Server],
    results: dict[str, Any],
    wrk_bin: str,
    scripts: dict[str, Path],
) -> None:
    """Warm up, then rounds of every concurrency over every live subject, alternating the order."""
    live = [s for s in subjects if results["subjects"][s.key]["status"] == "ok"]
    mock_pid = running["mock"].pid
    for subject in live:
        spec = specs[subject.server]
        try:
            wrk.run(wrk_bin, spec.url("/v1/chat/completions"), scripts[subject.key], 8, plan.warmup_s)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            results["subjects"][subject.key].update(status="failed", error=f"warm-up: {exc}")
    for rnd in range(plan.rounds):
        order = live if rnd % 2 == 0 else live[::-1]
        for conc, seconds in plan.seconds.items():
            for subject in order:
                entry = results["subjects"][subject.key]
                server = running[subject.server]
                if entry["status"] != "ok":
                    continue
                if not server.alive():
                    entry.update(
                        status="failed", error=f"the server exited during the load (round {rnd + 1})"
                    )
                    continue
                url = specs[subject.server].url("/v1/chat/completions")
                upstream = None if subject.key == "1" else mock_pid
                try:
                    row = measure.load(
                        wrk_bin, url, scripts[subject.key], conc, seconds, server.pid, upstream
                    )
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                    entry.setdefault("load_errors", []).append(f"round {rnd + 1} c{conc}: {exc}")
                    continue
                row["round"] = rnd
                entry["runs"].setdefault(str(conc), []).append(row)
                print(
                    f"  round {rnd + 1}/{plan.rounds} c{conc:<3} ({subject.key:>2}) {row['rps']:8.0f} req/s"
                    f"  p50 {row['p50_ms'] or 0:7.2f} ms  cpu {row['cpu_ms_per_req'] or 0:6.3f} ms/req"
                    f"  other load {row['other_cores']:.2f} cores"
                    + (f"  errors {row['errors']}" if row["errors"] else ""),
                    flush=True,
                )


def bench(plan: Plan) -> dict[str, Any]:
    """Run every phase; always stops what it started."""
    shutil.rmtree(SCRATCH, ignore_errors=True)
    logs = SCRATCH / "logs"
    logs.mkdir(parents=True)
    wrk_bin = wrk.ensure_wrk()
    for folder in ("proxy", "validators", "bench"):
        compileall.compile_dir(str(REPO / folder), quiet=1)  # pyc in place: start-up without compiling
    subjects = _selected(plan)
    needed = {s.server for s in subjects}
    litellm_version, litellm_error = None, None
    if "litellm" in needed:
        try:
            litellm_version = litellm_env.ensure(logs / "litellm-venv.log")
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            litellm_error = f"LiteLLM venv: {exc}"
    specs, standin = servers(SCRATCH)
    if standin:
        print("WARNING: the mock upstream is a dry-run stand-in (BENCH_MOCK_CMD); figures are not comparable")
    results: dict[str, Any] = {"meta": _meta(plan, standin, litellm_version or litellm_env.our_version())}
    order = [specs[k] for k in specs if k in needed and not (k == "litellm" and litellm_error)]
    print(f"start-up ({plan.startups} each, interleaved)", flush=True)
    running, info = phases.start_all(order, plan.startups, logs, REPO)
    if litellm_error:
        info["litellm"] = {"title": "LiteLLM proxy", "status": "failed", "error": litellm_error}
    results["servers"] = info
    try:
        results["subjects"] = {}
        for subject in subjects:
            entry: dict[str, Any] = {
                "title": subject.title,
                "server": subject.server,
                "status": "ok",
                "runs": {},
            }
            server_info = info[subject.server]
            if server_info["status"] != "ok" or info["mock"]["status"] != "ok":
                failed = server_info if server_info["status"] != "ok" else info["mock"]
                entry.update(status="failed", error=failed.get("error", "not started"))
            else:
                problem, seen = phases.probe(subject, specs[subject.server])
                entry["probe_headers"] = seen
                if problem:
                    entry.update(status="failed", error=problem)
            results["subjects"][subject.key] = entry
        print("load rounds", flush=True)
        _load_rounds(plan, subjects, specs, running, results, wrk_bin, _scripts(subjects, SCRATCH))
        phases.rss_after(running, info)
        if info["mock"]["status"] == "ok" and (plan.only is None or "ttfb" in plan.only):
            print("streaming time to first content", flush=True)
            results["ttfb"] = phases.ttfb(specs, logs, REPO, plan.ttfb_samples)
    finally:
        for server in reversed(running.values()):  # the mock upstream last
            server.stop()
    if plan.only is None or "validators" in plan.only:
        print("validators (bench/bench_validators.py)", flush=True)
        results["validators"] = phases.validators(REPO, timeout=120 if plan.quick else 600)
    results["meta"]["loadavg_after"] = os.getloadavg()
    return results


def finish(results: dict[str, Any]) -> None:
    """Summaries, ratios and targets; the tables printed; latest.json written."""
    subjects = results["subjects"]
    for entry in subjects.values():
        if entry["status"] == "ok" and not entry["runs"]:
            entry.update(
                status="failed", error="; ".join(entry.get("load_errors", ["no load run completed"]))
            )
    results["summary"] = report.summarize(subjects)
    results["added_p50_ms_c1"] = report.added_p50(subjects)
    results["ratios"] = report.ratios(results["summary"])
    results["targets"] = report.targets(results)
    results["meta"]["other_load_cores_median"] = report.noise(subjects)
    print()
    print(report.render(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\nwritten: {RESULTS.relative_to(REPO)}   logs: {SCRATCH.relative_to(REPO)}/logs")


def main() -> int:
    """Entry point of `make bench`."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    plan = Plan.from_env(dict(os.environ))
    began = time.perf_counter()
    try:
        results = bench(plan)
    except Exception:  # report what broke the harness itself; subjects' failures never get here
        traceback.print_exc()
        return 2
    results["meta"]["wall_s"] = round(time.perf_counter() - began, 1)
    finish(results)
    print(f"wall time {results['meta']['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
