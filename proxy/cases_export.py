"""`guardproxy cases export`: recorded answers as a cases file for `guardproxy policy test`.

Each record becomes one case: the model's raw output (the first invalid one when the answer was
re-asked or fell back) as `output`, the request's `response_format` / `tools` as `request`, and an
`expect` from the latest reviewer verdict: `bad` with a correction expects that `content`; `bad`
without one expects `rejected`; `good` expects what was answered. A record nobody rated expects its
current outcome, under a `# review:` comment: confirm or change it before you commit the file.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from .records import open_store, parse_since
from .records.recorder import records_path
from .settings import Settings

__all__ = ["export_cases", "render_cases", "run_export"]

# outcomes `policy test` can show offline: a re-asked or fallen-back answer's raw output is refused there
_OFFLINE = {"reasked": "rejected", "fallback": "rejected", "error": "rejected"}


def run_export(
    settings: Settings,
    *,
    policy: str,
    since: str | None,
    outcomes: Sequence[str],
    feedback: str | None,
    out: Path | None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Write the cases file (or print it); 0 on success, 1 when nothing matched or an option is wrong."""
    err = stderr or sys.stderr
    try:
        window = parse_since(since) if since else None
    except ValueError as exc:
        print(f"--since: {exc}", file=err)
        return 1
    store = open_store(settings.cache.backend, path=records_path(settings.cache.path), url=settings.cache.url)

    async def read() -> list[dict[str, Any]]:
        try:
            return await store.query(
                since=None if window is None else time.time() - window,
                policy=policy,
                outcomes=outcomes,
                limit=10_000,
            )
        finally:
            await store.close()

    docs = [d for d in asyncio.run(read()) if _feedback_matches(d, feedback)]
    if not docs:
        print(f"no recorded answers match (policy {policy}); nothing written", file=err)
        return 1
    text = render_cases(docs, header=_header(policy, since, outcomes, feedback))
    if out is None:
        (stdout or sys.stdout).write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {len(docs)} cases to {out}", file=err)
    return 0


def _feedback_matches(doc: Mapping[str, Any], wanted: str | None) -> bool:
    if wanted is None:
        return True
    verdict = _latest(doc)
    if wanted == "any":
        return verdict is not None
    if wanted == "none":
        return verdict is None
    return verdict is not None and verdict["verdict"] == wanted


def _latest(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    entries = list((doc.get("feedback") or {}).values())
    return max(entries, key=lambda f: f.get("created", 0)) if entries else None


def _header(policy: str, since: str | None, outcomes: Sequence[str], feedback: str | None) -> str:
    options = [f"--policy {policy}"]
    options += [f"--since {since}"] if since else []
    options += [f"--outcome {','.join(outcomes)}"] if outcomes else []
    options += [f"--feedback {feedback}"] if feedback else []
    run = f"# run: guardproxy policy test policies/{policy}.yaml THIS_FILE"
    return f"# guardproxy cases export {' '.join(options)}\n{run}\n"


def export_cases(docs: Sequence[Mapping[str, Any]]) -> list[tuple[dict[str, Any], str | None]]:
    """(case, review note) per record; the note is set when `expect` is not a reviewer's verdict."""
    return [_case(d) for d in docs]


def render_cases(docs: Sequence[Mapping[str, Any]], *, header: str = "") -> str:
    chunks = [header] if header else []
    for case, note in export_cases(docs):
        block = yaml.safe_dump([case], sort_keys=False, allow_unicode=True, width=100)
        chunks.append((f"# review: {note}\n" if note else "") + block)
    return "\n".join(chunks)


def _case(doc: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    invalid = doc.get("invalid_outputs") or []
    raw = invalid[0] if invalid else doc.get("raw_output") or {"content": ""}
    output: Any = raw.get("content") or ""
    if raw.get("tool_calls"):
        output = {"content": raw.get("content"), "tool_calls": raw["tool_calls"]}
    request = {k: v for k, v in (doc.get("request") or {}).items() if k in ("response_format", "tools")}
    case: dict[str, Any] = {"name": f"{doc['alias']}-{doc['id'][:12]}", "output": output}
    if request:
        case["request"] = request
    verdict = _latest(doc)
    outcome = _OFFLINE.get(doc["outcome"], doc["outcome"])
    note = None
    if verdict is not None and verdict["verdict"] == "bad":
        correction = verdict.get("correction")
        case["expect"] = {"content": correction} if correction is not None else {"outcome": "rejected"}
    elif verdict is not None and verdict["verdict"] == "good":
        final = doc.get("final_output") or {}
        case["expect"] = {"outcome": outcome}
        if outcome != "rejected" and isinstance(final.get("content"), str):
            case["expect"]["content"] = final["content"]
    else:
        case["expect"] = {"outcome": outcome}
        note = f"expects the current outcome ({doc['outcome']}); nobody has reviewed it yet"
    return case, note
