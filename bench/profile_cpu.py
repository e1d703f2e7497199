"""Where guardproxy's CPU goes under load: py-spy samples one subject while wrk drives it.

Run: .venv/bin/python -m bench.profile_cpu [--subject 5|6|7|7s] [--seconds 10] [--connections 8]
Writes .bench/profile/profile-SUBJECT.txt (collapsed stacks: for flamegraph.pl or speedscope) and
bench/results/profile-SUBJECT.json; prints the functions with the most self time, guardproxy's own
functions by inclusive time, and the share of samples per package. Needs py-spy (`pip install py-spy`).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import phases, wrk
from bench.payload import request_body
from bench.subjects import HEADERS, SUBJECTS, servers

BENCH = Path(__file__).resolve().parent

REPO = BENCH.parent
SCRATCH = REPO / ".bench" / "profile"
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
AREAS = (
    ("guardproxy", ("/proxy/",)),
    ("validators", ("/validators/",)),
    ("litellm", ("/litellm/",)),
    ("starlette", ("/starlette/",)),
    ("uvicorn", ("/uvicorn/", "httptools", "uvloop")),
    ("aiohttp", ("/aiohttp/", "/yarl/", "/multidict/")),
    ("jsonschema", ("/jsonschema", "/referencing/", "/rpds")),
    ("pydantic", ("/pydantic",)),
    ("tenacity", ("/tenacity/",)),
    ("prometheus_client", ("/prometheus_client/",)),
    ("json (stdlib)", ("/json/",)),
    ("asyncio", ("/asyncio/",)),
    ("logging", ("/logging/",)),
)


def parse_frame(frame: str) -> tuple[str, str]:
    """(function, file) of one py-spy frame `func (file:line)`."""
    match = FRAME.match(frame.strip())
    return (match["func"], match["file"]) if match else (frame.strip(), "")


def area(file: str) -> str:
    """Which package a source file belongs to."""
    path = "/" + file  # py-spy prints paths relative to sys.path: proxy/app.py, starlette/routing.py
    for name, marks in AREAS:
        if any(mark in path for mark in marks):
            return name
    return "python stdlib / other" if file else "native / idle"


def summarize(lines: Iterable[str], top: int = 25) -> dict[str, Any]:
    """Self time per function, inclusive time of guardproxy and validators functions, samples per area."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [parse_frame(f) for f in stack.split(";") if f and not f.startswith("process ")]
        func, file = frames[-1] if frames else ("?", "")
        own[f"{func} ({_short(file)})"] += count
        areas[area(file)] += count
        seen = {f"{fn} ({_short(fl)})" for fn, fl in frames if area(fl) in ("guardproxy", "validators")}
        for name in seen:
            inclusive[name] += count

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / total) for name, n in counter.most_common(top)] if total else []

    ours = [(name, part) for name, part in share(inclusive) if part < 0.99]  # not the entry point frames
    return {"samples": total, "self": share(own), "inclusive_ours": ours, "areas": share(areas)}


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def main() -> int:
    """Start the mock and one guardproxy subject, drive it with wrk, sample it with py-spy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", default="5", choices=[s.key for s in SUBJECTS if s.guardproxy])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 1
    subject = next(s for s in SUBJECTS if s.key == args.subject)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    (SCRATCH / "logs").mkdir(parents=True)
    specs, _ = servers(SCRATCH)
    wanted = [specs["mock"], specs[subject.server]]
    running = {s.key: phases.new_server(s, SCRATCH / "logs", REPO) for s in wanted}
    out = SCRATCH / f"profile-{subject.key}.txt"
    try:
        phases.start_all(wanted, running, dict.fromkeys(running, 1))
        problem, _ = phases.probe(subject, specs[subject.server])
        if problem:
            print(f"subject ({subject.key}) does not answer correctly: {problem}", file=sys.stderr)
            return 1
        script = SCRATCH / "post.lua"
        script.write_text(wrk.lua_script(json.dumps(request_body(stream=subject.stream)).encode(), HEADERS))
        url = specs[subject.server].url("/v1/chat/completions")
        wrk_bin = wrk.ensure_wrk()
        wrk.run(wrk_bin, url, script, args.connections, 2)  # warm-up
        record = [
            pyspy,
            "record",
            "--pid",
            str(running[subject.server].pid),
            "--duration",
            str(args.seconds),
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--output",
            str(out),
            "--subprocesses",
        ]
        sampler = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        result = wrk.run(wrk_bin, url, script, args.connections, args.seconds)
        _, err = sampler.communicate(timeout=args.seconds + 30)
        if sampler.returncode != 0 or not out.exists():
            print(f"py-spy failed: {err.strip()[-400:]}", file=sys.stderr)
            return 1
    finally:
        for server in reversed(running.values()):
            server.stop()
    figures = summarize(out.read_text().splitlines())
    figures.update(subject=subject.key, rps=result.rps, p50_ms=result.p50_ms, connections=args.connections)
    (BENCH / "results" / f"profile-{subject.key}.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(
        f"({subject.key}) {subject.title}: {result.rps:.0f} req/s at c{args.connections}, "
        f"{figures['samples']} samples -> {out.relative_to(REPO)}"
    )
    for title, key in (
        ("share of samples per package", "areas"),
        ("self time", "self"),
        ("guardproxy / validators functions, inclusive", "inclusive_ours"),
    ):
        print(f"\n{title}:")
        for name, part in figures[key]:
            print(f"  {part:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
