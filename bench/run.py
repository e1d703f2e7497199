"""`make bench`: every subject on one mock upstream, interleaved rounds, a table and results/latest.json.

BENCH_QUICK=1 shortens everything (under 3 minutes). For development: BENCH_ONLY=1,2,5 picks subjects,
BENCH_ROUNDS / BENCH_SECONDS override the plan. docs/performance.md describes the method.
"""

from __future__ import annotations

import compileall
import contextlib
import datetime
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import litellm_env, phases, report, rounds, wrk
from bench.subjects import HEADERS, SUBJECTS, ServerSpec, Subject, servers

BENCH = Path(__file__).resolve().parent

REPO = BENCH.parent
RESULTS = BENCH / "results" / "latest.json"
SCRATCH = REPO / ".bench" / "run"
LOCK = REPO / ".bench" / "run.lock"  # one run at a time per checkout: it owns SCRATCH


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
        seconds = {1: 1, 8: 2, 64: 1} if quick else {1: 4, 8: 5, 64: 5}
        if env.get("BENCH_SECONDS"):
            seconds = dict.fromkeys(seconds, int(env["BENCH_SECONDS"]))
        only = frozenset(env["BENCH_ONLY"].split(",")) if env.get("BENCH_ONLY") else None
        rounds = max(2, int(env.get("BENCH_ROUNDS", 2 if quick else 3)))
        return Plan(quick, rounds, seconds, 3, 1, 10 if quick else 100, only)


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
        path.write_text(wrk.lua_script(json.dumps(subject.body()).encode(), HEADERS))
        scripts[subject.key] = path
    return scripts


def _probe_all(
    subjects: list[Subject], specs: dict[str, ServerSpec], info: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """An entry per subject; failed when its server (or the mock) is down or its answer is wrong."""
    entries: dict[str, dict[str, Any]] = {}
    for subject in subjects:
        entry: dict[str, Any] = {"title": subject.title, "server": subject.server, "status": "ok", "runs": {}}
        down = [info[k] for k in subject.needs if info[k]["status"] != "ok"]
        if down:
            entry.update(status="failed", error=down[0].get("error", "not started"))
        else:
            problem, entry["probe_headers"] = phases.probe(subject, specs[subject.server])
            if problem:
                entry.update(status="failed", error=problem)
        entries[subject.key] = entry
    return entries


def bench(plan: Plan) -> dict[str, Any]:
    """Run every phase; always stops what it started."""
    clock, phase_s = time.perf_counter(), {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phase_s[name], clock = round(now - clock, 1), now

    shutil.rmtree(SCRATCH, ignore_errors=True)
    logs = SCRATCH / "logs"
    logs.mkdir(parents=True)
    wrk_bin = wrk.ensure_wrk()
    for folder in ("proxy", "validators", "bench"):
        compileall.compile_dir(str(REPO / folder), quiet=1)  # pyc in place: start-up without compiling
    subjects = _selected(plan)
    needed = {key for s in subjects for key in s.needs}
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
    running = {spec.key: phases.new_server(spec, logs, REPO) for spec in order}
    lap("setup")
    try:
        # BENCH_QUICK: the servers that import litellm start once (they take 5-10 s each on a quiet machine)
        once = ("litellm", "acompletion", "gp_litellm") if plan.quick else ()
        tries = {s.key: 1 if s.key in once or s.key == "redis" else plan.startups for s in order}
        print(f"start-up (up to {plan.startups} each, interleaved)", flush=True)
        info = phases.start_all(order, running, tries)
        if litellm_error:
            info["litellm"] = {"title": "LiteLLM proxy", "status": "failed", "error": litellm_error}
        results["servers"] = info
        lap("start-up")
        results["subjects"] = entries = _probe_all(subjects, specs, info)
        print("load rounds", flush=True)
        scripts = _scripts(subjects, SCRATCH)
        warm = rounds.warm_up(subjects, specs, entries, wrk_bin, scripts, plan.warmup_s)
        cap = 3 if plan.quick else 10
        rounds.run_rounds(
            plan.rounds, plan.seconds, cap, subjects, specs, running, entries, wrk_bin, scripts, warm
        )
        phases.rss_after(running, info)
        lap("load")
        if info["mock"]["status"] == "ok" and (plan.only is None or "ttfb" in plan.only):
            print("streaming time to first content", flush=True)
            results["ttfb"] = phases.ttfb(specs, logs, REPO, plan.ttfb_samples)
            lap("ttfb")
    finally:
        for server in reversed(running.values()):  # the mock upstream last
            server.stop()
    if plan.only is None or "validators" in plan.only:
        print("validators (bench/bench_validators.py)", flush=True)
        results["validators"] = phases.validators(REPO, timeout=120 if plan.quick else 600)
        lap("validators")
    results["meta"].update(loadavg_after=os.getloadavg(), phase_s=phase_s)
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
    results["recording"] = report.recording_cost(subjects, results["summary"])
    results["meta"]["other_load_cores_median"] = report.noise(subjects)
    print()
    print(report.render(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\nwritten: {RESULTS.relative_to(REPO)}   logs: {SCRATCH.relative_to(REPO)}/logs")


@contextlib.contextmanager
def _sole_run() -> Iterator[bool]:
    """Hold `.bench/run.lock` for the run: True when no other run holds it (the scratch folder is ours)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        yield alone  # the lock goes with the file's closing


def main() -> int:
    """Entry point of `make bench`."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    plan = Plan.from_env(dict(os.environ))
    began = time.perf_counter()
    with _sole_run() as alone:
        if not alone:
            print(f"another `make bench` is running in this checkout (it holds {os.path.relpath(LOCK)}):")
            print("two benchmarks on the same cores measure each other; run this one when it has ended")
            return 2
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
