"""`guardproxy policy test`: run a policy offline on recorded model outputs and check the expectations."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from validators import Registry, RequestContext, check, default_registry

from .judge import Judgement, judge, output_of
from .policy import Policy, load_policy
from .yamlfile import ConfigError, Located, Problem, did_you_mean, load_yaml

__all__ = ["OUTCOMES", "CaseResult", "run_case", "run_policy_test"]

OUTCOMES = ("pass", "repaired", "redacted", "flagged", "rejected")
_CASE_KEYS = ("name", "output", "request", "expect")
_EXPECT_KEYS = ("outcome", "violations", "content")
_OUTPUT_KEYS = ("content", "tool_calls")
_CONTEXT_KEYS = ("response_format", "tools", "messages")  # the request fields that change a verdict
_NOT_OFFLINE = {"reasked": "would re-ask", "fallback": "would fall back"}


@dataclass(frozen=True)
class _Case:
    name: str
    message: dict[str, Any]
    ctx: RequestContext
    expect: Mapping[str, Any]


@dataclass
class CaseResult:
    """What the policy made of one recorded output, and which expectations failed."""

    name: str
    outcome: str
    repairs: list[str]
    violations: list[str]
    content: str | None
    note: str = ""
    failures: list[str] = field(default_factory=list)


def run_policy_test(policy_path: Path, cases_path: Path | None, *, stdout: TextIO | None = None,
                    stderr: TextIO | None = None) -> int:
    """Print one row per case and a summary; 0 when every expectation holds, 1 otherwise."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if cases_path is None:
        cases_path = policy_path.with_name(f"{policy_path.name.removesuffix('.yaml')}.cases.yaml")
    try:
        registry = default_registry()
        policy = load_policy(policy_path, registry)
        if not cases_path.is_file():
            raise ConfigError([Problem(str(cases_path), 1, "(file)", "no such cases file; write one (a YAML list "
                                       "of {name, output, request?, expect?}) or pass CASES")])
        cases = _load_cases(cases_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 1
    results = [run_case(policy, registry, case) for case in cases]
    _print_table(results, out)
    failed = sum(1 for r in results if r.failures)
    print(f"{len(results) - failed} passed, {failed} failed", file=out)
    return 1 if failed else 0


def run_case(policy: Policy, registry: Registry, case: _Case) -> CaseResult:
    """Judge one recorded output as the ladder would, without any upstream call."""
    validators = policy.validators_for(registry, case.ctx)
    completion = {"choices": [{"index": 0, "message": case.message, "finish_reason": "stop"}]}
    fired = check(validators, output_of(case.message), case.ctx)
    verdict = judge(completion, validators, case.ctx, allow_repair="repair" in policy.spec.on_fail)
    outcome, note = _outcome(policy, verdict)
    message = verdict.completion["choices"][0]["message"]
    result = CaseResult(
        name=case.name,
        outcome=outcome,
        repairs=[*verdict.repairs, *(f"redact:{n}" for n in verdict.redactions)],
        violations=list(dict.fromkeys(v.validator for v in fired)),
        content=None if outcome == "rejected" else message.get("content"),
        note=note,
    )
    result.failures = _mismatches(case.expect, result)
    return result


def _outcome(policy: Policy, verdict: Judgement) -> tuple[str, str]:
    """The header word the proxy would send (proxy.ladder's order), and why it refused when it did."""
    if verdict.ok or policy.spec.mode == "monitor":
        if verdict.flagged or not verdict.ok:
            return "flagged", ""
        return ("repaired" if verdict.repairs else "redacted" if verdict.redactions else "pass"), ""
    steps, spec = policy.spec.on_fail, policy.spec
    if verdict.rejected:
        return "rejected", "on_fail: reject"
    if "reask" in steps and spec.reask.max > 0 and spec.max_attempts > 1:
        return "rejected", _NOT_OFFLINE["reasked"]
    if "fallback" in steps:
        return "rejected", _NOT_OFFLINE["fallback"]
    return "rejected", ""


def _mismatches(expect: Mapping[str, Any], result: CaseResult) -> list[str]:
    failures = []
    if "outcome" in expect and expect["outcome"] != result.outcome:
        failures.append(f"outcome: expected {expect['outcome']}, got {result.outcome}")
    if "violations" in expect and sorted(set(expect["violations"])) != sorted(result.violations):
        want = ", ".join(sorted(set(expect["violations"]))) or "none"
        failures.append(f"violations: expected {want}, got {', '.join(sorted(result.violations)) or 'none'}")
    if "content" in expect:
        want, got = expect["content"], result.content
        if isinstance(want, (Mapping, list)):
            try:
                same = got is not None and json.loads(got) == want
            except ValueError:
                same = False
        else:
            same = want == got
        if not same:
            shown = json.dumps(want, ensure_ascii=False) if isinstance(want, (Mapping, list)) else repr(want)
            failures.append(f"content: expected {shown}, got {got!r}")
    return failures


def _print_table(results: Sequence[CaseResult], out: TextIO) -> None:
    rows = [("case", "verdict", "outcome", "repairs", "violations")]
    for r in results:
        outcome = f"{r.outcome} ({r.note})" if r.note else r.outcome
        rows.append((r.name, "FAIL" if r.failures else "PASS", outcome, ",".join(r.repairs) or "-",
                     ",".join(r.violations) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)
    for r in results:
        for failure in r.failures:
            print(f"FAIL {r.name}: {failure}", file=out)


def _load_cases(path: Path) -> list[_Case]:
    """Parse and check a cases file; ConfigError with FILE:LINE for every problem."""
    located = load_yaml(path, expand_env=False)
    if not isinstance(located.data, list) or not located.data:
        raise ConfigError([located.problem((), "a cases file must be a non-empty list of cases")])
    problems: list[Problem] = []
    cases: list[_Case] = []
    seen: set[str] = set()
    for i, raw in enumerate(located.data):
        before = len(problems)
        case = _parse_case(located, i, raw, problems)
        if case is not None and case.name in seen:
            problems.append(located.problem((i, "name"), f"duplicate case name '{case.name}'"))
        if case is not None and len(problems) == before:
            seen.add(case.name)
            cases.append(case)
    if problems:
        raise ConfigError(problems)
    return cases


def _unknown(located: Located, loc: tuple[str | int, ...], data: Mapping[str, Any], known: Sequence[str],
             problems: list[Problem]) -> None:
    for key in data:
        if key not in known:
            problems.append(located.problem((*loc, key), f"unknown key '{key}'{did_you_mean(str(key), known)}"))


def _parse_case(located: Located, i: int, raw: Any, problems: list[Problem]) -> _Case | None:
    def bad(loc: tuple[str | int, ...], what: str) -> None:
        problems.append(located.problem((i, *loc), what))

    if not isinstance(raw, dict):
        bad((), "a case must be a mapping with name and output")
        return None
    _unknown(located, (i,), raw, _CASE_KEYS, problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        bad(("name",), "every case needs a name (a non-empty string)")
    message = _message(raw.get("output"), bad) if "output" in raw else None
    if "output" not in raw:
        bad((), "missing 'output' (the recorded model output: a string or {content, tool_calls})")
    request = raw.get("request") or {}
    if not isinstance(request, dict):
        bad(("request",), "request must be a mapping of OpenAI request fields")
        request = {}
    for key in request:  # other OpenAI fields are allowed; a near-miss of one that matters is a typo
        hint = did_you_mean(str(key), _CONTEXT_KEYS)
        if key not in _CONTEXT_KEYS and hint:
            bad(("request", key), f"unknown request field '{key}'{hint}")
    if "response_format" in request and not isinstance(request["response_format"], dict):
        bad(("request", "response_format"), "response_format must be a mapping")
    tools = request.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        bad(("request", "tools"), "tools must be a list of OpenAI tool mappings")
        tools = []
    expect = raw.get("expect") or {}
    if not isinstance(expect, dict):
        bad(("expect",), "expect must be a mapping of outcome, violations, content")
        expect = {}
    _unknown(located, (i, "expect"), expect, _EXPECT_KEYS, problems)
    outcome = expect.get("outcome")
    if outcome in _NOT_OFFLINE:
        bad(("expect", "outcome"), f"'{outcome}' needs a model call; offline such an output is reported as "
                                   f"'rejected' ({_NOT_OFFLINE[outcome]})")
    elif "outcome" in expect and outcome not in OUTCOMES:
        bad(("expect", "outcome"), f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}"
                                   f"{did_you_mean(str(outcome), OUTCOMES)}")
    wanted = expect.get("violations", [])
    if not isinstance(wanted, list) or not all(isinstance(v, str) for v in wanted):
        bad(("expect", "violations"), "violations must be a list of validator types")
    if not isinstance(name, str) or message is None:
        return None
    ctx = RequestContext(response_format=request.get("response_format"), tools=tuple(tools))
    return _Case(name.strip(), message, ctx, expect)


def _message(output: Any, bad: Any) -> dict[str, Any] | None:
    """The assistant message for a recorded output (tool-call arguments may be written as a mapping)."""
    if isinstance(output, str):
        return {"role": "assistant", "content": output}
    if not isinstance(output, dict):
        bad(("output",), "output must be a string or a mapping {content, tool_calls}")
        return None
    unknown = [k for k in output if k not in _OUTPUT_KEYS]
    for key in unknown:
        bad(("output", key), f"unknown key '{key}'{did_you_mean(str(key), _OUTPUT_KEYS)}")
    content, calls = output.get("content"), output.get("tool_calls") or []
    if content is not None and not isinstance(content, str):
        bad(("output", "content"), "content must be a string (quote JSON as a YAML block string)")
    if not isinstance(calls, list):
        bad(("output", "tool_calls"), "tool_calls must be a list")
        return None
    tool_calls = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            bad(("output", "tool_calls", j), "a tool call needs function: {name, arguments}")
            continue
        args = fn.get("arguments", "{}")
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        tool_calls.append({"id": call.get("id", f"call_{j}"), "type": "function",
                           "function": {"name": fn["name"], "arguments": args}})
    if unknown or (content is not None and not isinstance(content, str)):
        return None
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message
