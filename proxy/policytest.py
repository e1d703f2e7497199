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
from .outcome import Outcome, decide
from .policy import Policy, load_policy
from .yamlfile import ConfigError, Located, Problem, did_you_mean, load_yaml

__all__ = ["OUTCOMES", "run_policy_test"]

OUTCOMES = ("pass", "repaired", "redacted", "flagged", "rejected")
_CASE_KEYS = ("name", "output", "request", "expect")
_EXPECT_KEYS = ("outcome", "violations", "content")
_OUTPUT_KEYS = ("content", "tool_calls")
_CONTEXT_KEYS = ("response_format", "tools", "tool_choice", "messages")  # fields a case usually sets
_NO_CASES = "no such cases file: write one (a YAML list of {name, output, request?, expect?}) or pass CASES"
_NOT_OFFLINE = {"reasked": "would re-ask", "fallback": "would fall back"}

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class _Case:
    name: str
    message: dict[str, Any]
    ctx: RequestContext
    expect: Mapping[str, Any]


@dataclass
class _Result:
    name: str
    outcome: str
    note: str
    repairs: list[str]
    violations: list[str]
    content: str | None
    failures: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def row(self) -> tuple[str, str, str, str, str]:
        outcome = f"{self.outcome} ({self.note})" if self.note else self.outcome
        verdict = "FAIL" if self.failures else "PASS"
        return self.name, verdict, outcome, ",".join(self.repairs) or "-", ",".join(self.violations) or "-"


def run_policy_test(
    policy_path: Path, cases_path: Path | None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Print one row per case and a summary; 0 when every expectation holds, 1 otherwise."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if cases_path is None:
        cases_path = policy_path.with_name(f"{policy_path.name.removesuffix('.yaml')}.cases.yaml")
    try:
        registry = default_registry()
        policy = load_policy(policy_path, registry)
        cases = _load_cases(cases_path, registry.names())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 1
    results = [_run_case(policy, registry, case) for case in cases]
    _print_report(results, out)
    failed = sum(1 for r in results if r.failures)
    print(f"{len(results) - failed} passed, {failed} failed", file=out)
    return 1 if failed else 0


def _run_case(policy: Policy, registry: Registry, case: _Case) -> _Result:
    """Judge one recorded output as the ladder would, without any upstream call."""
    validators = policy.validators_for(registry, case.ctx)
    completion = {"choices": [{"index": 0, "message": case.message, "finish_reason": "stop"}]}
    found = check(validators, output_of(case.message), case.ctx)  # before repair and redaction
    verdict = judge(completion, validators, case.ctx, allow_repair="repair" in policy.spec.on_fail)
    outcome, note = _outcome(policy, verdict)
    content = None if outcome == "rejected" else verdict.completion["choices"][0]["message"].get("content")
    types = list(dict.fromkeys(v.validator for v in found))
    result = _Result(case.name, outcome, note, [*verdict.repairs, *verdict.redactions], types, content)
    result.failures = _mismatches(case.expect, result)
    result.details = [f"{v.validator}{f' at {v.path}' if v.path else ''}: {v.message}" for v in found]
    return result


def _outcome(policy: Policy, verdict: Judgement) -> tuple[str, str]:
    """The header word the proxy would answer with (as proxy.ladder decides it), and why it refused."""
    spec = policy.spec
    if verdict.ok or spec.mode == "monitor":
        flagged = bool(verdict.flagged) or not verdict.ok
        return decide(flagged=flagged, repaired=bool(verdict.repairs), redacted=bool(verdict.redactions)), ""
    if verdict.rejected:
        return Outcome.REJECTED, "on_fail: reject"
    if "reask" in spec.on_fail and spec.reask.max > 0 and spec.max_attempts > 1:
        return Outcome.REJECTED, _NOT_OFFLINE["reasked"]
    return Outcome.REJECTED, _NOT_OFFLINE["fallback"] if "fallback" in spec.on_fail else ""


def _mismatches(expect: Mapping[str, Any], result: _Result) -> list[str]:
    failures = []
    if "outcome" in expect and expect["outcome"] != result.outcome:
        failures.append(f"outcome: expected {expect['outcome']}, got {result.outcome}")
    want, got = sorted(set(expect.get("violations", []))), sorted(result.violations)
    if "violations" in expect and want != got:
        failures.append(f"violations: expected {', '.join(want) or 'none'}, got {', '.join(got) or 'none'}")
    if "content" in expect and not _same_content(expect["content"], result.content):
        failures.append(f"content: expected {_show(expect['content'])}, got {_show(result.content)}")
    return failures


def _show(value: Any) -> str:
    if value is None:
        return "nothing (rejected)"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (Mapping, list)) else repr(value)


def _same_content(want: Any, got: str | None) -> bool:
    """Text compares exactly; a mapping or list compares with the answer parsed as JSON."""
    if not isinstance(want, (Mapping, list)):
        return bool(want == got)
    try:
        return got is not None and json.loads(got) == want
    except ValueError:
        return False


def _print_report(results: Sequence[_Result], out: TextIO) -> None:
    rows = [("case", "verdict", "outcome", "repairs", "violations"), *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)
    for r in (r for r in results if r.failures):
        print(f"\nFAIL {r.name}", file=out)
        for line in [*r.failures, *(f"found {d}" for d in r.details)]:
            print(f"  {line}", file=out)
    print(file=out)


def _load_cases(path: Path, validator_types: Sequence[str]) -> list[_Case]:
    """Parse and check a cases file; ConfigError with FILE:LINE for every problem."""
    if not path.is_file():
        raise ConfigError([Problem(str(path), 1, "(file)", _NO_CASES)])
    located = load_yaml(path, expand_env=False)
    if not isinstance(located.data, list) or not located.data:
        raise ConfigError([located.problem((), "a cases file must be a non-empty list of cases")])
    parser = _Parser(located, validator_types)
    cases = [case for i, raw in enumerate(located.data) if (case := parser.case(i, raw)) is not None]
    if parser.problems:
        raise ConfigError(sorted(parser.problems, key=lambda p: p.line))
    return cases


class _Parser:
    """Turns the cases file's items into cases, collecting every problem with its line."""

    def __init__(self, located: Located, validator_types: Sequence[str]) -> None:
        self.located = located
        self.types = validator_types
        self.problems: list[Problem] = []
        self.names: set[str] = set()

    def bad(self, loc: Loc, what: str) -> None:
        self.problems.append(self.located.problem(loc, what))

    def mapping(self, loc: Loc, value: Any, known: Sequence[str], what: str) -> dict[str, Any]:
        """`value` as a mapping (None: empty) whose keys are all in `known`; {} after reporting otherwise."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad(loc, f"{loc[-1]} must be {what}")
            return {}
        for key in value:
            if known and key not in known:
                self.bad((*loc, key), f"unknown key '{key}'{did_you_mean(str(key), known)}")
        return value

    def case(self, i: int, raw: Any) -> _Case | None:
        count = len(self.problems)
        item = self.mapping((i,), raw, _CASE_KEYS, "a mapping {name, output, request?, expect?}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            self.bad((i, "name") if "name" in item else (i,), "every case needs a name (a non-empty string)")
        elif name.strip() in self.names:
            self.bad((i, "name"), f"duplicate case name '{name.strip()}'")
        self.names.add(name.strip() if isinstance(name, str) else "")
        message = self.message((i, "output"), item.get("output"))
        request = self.mapping((i, "request"), item.get("request"), (), "a mapping of OpenAI request fields")
        for key in request:  # other OpenAI fields are allowed and ignored; a near-miss is a typo
            if key not in _CONTEXT_KEYS and (hint := did_you_mean(str(key), _CONTEXT_KEYS)):
                self.bad((i, "request", key), f"unknown request field '{key}'{hint}")
        rf, tools = request.get("response_format"), request.get("tools") or []
        if rf is not None and not isinstance(rf, dict):
            self.bad((i, "request", "response_format"), "response_format must be a mapping")
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            self.bad((i, "request", "tools"), "tools must be a list of OpenAI tool mappings")
        self.expect((i, "expect"), item.get("expect"))
        if len(self.problems) > count or message is None or not isinstance(name, str):
            return None
        ctx = RequestContext(rf, tuple(tools), tool_choice=request.get("tool_choice"))
        return _Case(name.strip(), message, ctx, item.get("expect") or {})

    def expect(self, loc: Loc, raw: Any) -> None:
        expect = self.mapping(loc, raw, _EXPECT_KEYS, "a mapping {outcome?, violations?, content?}")
        outcome = expect.get("outcome")
        if "outcome" in expect and outcome not in OUTCOMES:
            hint = f"{outcome!r}{did_you_mean(str(outcome), OUTCOMES)}"
            if outcome in _NOT_OFFLINE:  # offline nothing is re-asked or falls back
                hint = f"'{outcome}' (offline that answer shows as 'rejected ({_NOT_OFFLINE[outcome]})')"
            self.bad((*loc, "outcome"), f"outcome must be one of {', '.join(OUTCOMES)}, not {hint}")
        wanted = expect.get("violations", [])
        if not isinstance(wanted, list) or not all(isinstance(v, str) for v in wanted):
            self.bad((*loc, "violations"), "violations must be a list of validator types")
            return
        for j, kind in enumerate(wanted):
            if kind not in self.types:
                hint = did_you_mean(kind, self.types)
                self.bad((*loc, "violations", j), f"unknown validator '{kind}'{hint}")

    def message(self, loc: Loc, output: Any) -> dict[str, Any] | None:
        """The assistant message for a recorded output (tool-call arguments may be written as a mapping)."""
        if isinstance(output, str):
            return {"role": "assistant", "content": output}
        data = self.mapping(loc, output, _OUTPUT_KEYS, "a string or a mapping {content, tool_calls}")
        content, calls = data.get("content"), data.get("tool_calls") or []
        if output is None or (isinstance(output, dict) and not {"content", "tool_calls"} & set(output)):
            self.bad(loc, "every case needs an output: the answer, as a string or {content, tool_calls}")
        if content is not None and not isinstance(content, str):
            self.bad((*loc, "content"), "content must be a string (write JSON as a quoted or block string)")
        if not isinstance(calls, list):
            self.bad((*loc, "tool_calls"), "tool_calls must be a list")
            calls = []
        message: dict[str, Any] = {"role": "assistant", "content": content, "tool_calls": []}
        for j, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                self.bad((*loc, "tool_calls", j), "a tool call needs function: {name, arguments}")
                continue
            args = fn.get("arguments", "{}")
            args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            function = {"name": fn["name"], "arguments": args}
            message["tool_calls"].append({"id": f"call_{j}", "type": "function", "function": function})
        return message if data else None
