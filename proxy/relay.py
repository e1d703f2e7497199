"""Relaying one upstream stream through the stream guard, and settling the verdict when it ends (no I/O)."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from validators import (
    GuardStep,
    Output,
    RequestContext,
    StreamGuard,
    ValidationBudgetExceeded,
    Validator,
    Violation,
    check,
    redact,
    repair,
)

from .outcome import Outcome, decide
from .upstream import ChunkAssembler

__all__ = ["Relay", "Settled", "settle", "stream_view"]

_TEXT = frozenset({"content"})  # a delta with nothing but text (or nothing at all)


def stream_view(validators: Sequence[Validator], *, monitor: bool) -> list[Validator]:
    """The validators as a stream applies them: in monitor mode nothing blocks, findings are flagged."""
    if not monitor:
        return list(validators)
    view = []
    for v in validators:
        if v.on_fail not in ("redact", "flag"):
            v = copy.copy(v)
            v.on_fail = "flag"
        view.append(v)
    return view


@dataclass
class Relay:
    """Turns upstream chunks into client chunks through the stream guard; the upstream stream fills
    `assembler` (`proxy.upstream.Upstream.stream`)."""

    guard: StreamGuard
    include_usage: bool = False
    assembler: ChunkAssembler = field(default_factory=ChunkAssembler)
    released: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    stopped: bool = False
    finish_reason: str | None = None
    template: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Everything released so far (redactions applied)."""
        return "".join(self.released)

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out = {
            **self.template,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            out["usage"] = None
        return out

    def _feed(self, step: GuardStep) -> str:
        self.violations.extend(step.violations)
        if step.stop:
            self.stopped = True
            return ""
        if step.release:
            self.released.append(step.release)
        return step.release

    def relay(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The client chunks to send now for one upstream chunk (tool calls and finish are held)."""
        if not self.template:
            self.template = {k: chunk.get(k) for k in ("id", "object", "created", "model")}
            self.template["object"] = "chat.completion.chunk"
            if not isinstance(self.template["created"], int):  # some upstreams omit it (or send null)
                self.template["created"] = int(time.time())
        out = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            new: dict[str, Any] = {k: v for k, v in delta.items() if k in ("role", "refusal")}
            if delta.get("content"):
                text = self._feed(self.guard.feed(delta["content"]))
                if self.stopped:
                    return []
                if text:
                    new["content"] = text
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if new:
                out.append(self.chunk(new))
        return out

    def relay_all(self, chunks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """`relay` over chunks that arrived together, up to the one that stopped the stream. Their text
        goes through the guard in one piece and out as one chunk: one scan and one event per network
        read, not per chunk. A chunk whose delta has more than text (a role, a refusal, tool calls) goes
        through `relay`, after the text before it."""
        out: list[dict[str, Any]] = []
        texts: list[str] = []
        for chunk in chunks:
            choices: Sequence[Any] = chunk.get("choices") or ()
            choice = choices[0] if len(choices) == 1 else {}
            delta = choice.get("delta") or {}
            if not choice or not self.template or not delta.keys() <= _TEXT:
                if not self._release(texts, out):
                    return out
                out.extend(self.relay(chunk))
                if self.stopped:
                    return out
                continue
            if delta.get("content"):
                texts.append(delta["content"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        self._release(texts, out)
        return out

    def _release(self, texts: list[str], out: list[dict[str, Any]]) -> bool:
        """Feed the text gathered so far to the guard, add what it releases to `out`; False if it stopped."""
        if not texts:
            return True
        text = self._feed(self.guard.feed("".join(texts)))
        texts.clear()
        if self.stopped:
            return False
        if text:
            out.append(self.chunk({"content": text}))
        return True

    def tail(self) -> list[dict[str, Any]]:
        """The held-back rest of the text, once the upstream stream has ended."""
        text = self._feed(self.guard.finish())
        return [self.chunk({"content": text})] if text and not self.stopped else []


@dataclass(frozen=True)
class Settled:
    """The verdict on a finished stream: what blocks it, what to report, the tool calls to release."""

    outcome: Outcome
    blocking: list[Violation]
    reported: list[Violation]
    tool_calls: tuple[Mapping[str, Any], ...]
    repairs: tuple[str, ...] = ()


def _found(
    validators: Sequence[Validator], output: Output, ctx: RequestContext
) -> list[tuple[bool, Violation]]:
    """(blocks?, violation) for every finding; `flag` findings never block."""
    return [(v.on_fail != "flag", found) for v in validators for found in check([v], output, ctx)]


def settle(
    relay: Relay, validators: Sequence[Validator], ctx: RequestContext, *, allow_repair: bool, fallback: bool
) -> Settled:
    """Judge the whole answer: tool calls (never sent yet) are redacted and repaired; the text is checked.

    Within the request's validation budget: over it, the stream is refused (tool calls withheld).
    """
    if ctx.budget is None:
        return _settle(relay, validators, ctx, allow_repair=allow_repair, fallback=fallback)
    try:
        with ctx.budget.running():
            return _settle(relay, validators, ctx, allow_repair=allow_repair, fallback=fallback)
    except ValidationBudgetExceeded as exc:
        over = Violation("budget", f"{exc}; raise limits.validation_ms or simplify the schema", None)
        return Settled(decide(rejected=True), [over], [*relay.violations, over], ())


def _settle(
    relay: Relay, validators: Sequence[Validator], ctx: RequestContext, *, allow_repair: bool, fallback: bool
) -> Settled:
    message = relay.assembler.completion()["choices"][0]["message"]
    output = Output(relay.text or None, tuple(message.get("tool_calls") or ()), relay.finish_reason)
    redacted = relay.text != relay.assembler.text()
    if output.tool_calls:
        cleaned, names = redact(validators, Output(None, output.tool_calls), ctx)
        output = Output(output.text, cleaned.tool_calls, output.finish_reason)
        redacted = redacted or bool(names)
    found = _found(validators, output, ctx)
    repairs: tuple[str, ...] = ()
    if allow_repair and any(b and (v.path or "").startswith("/tool_calls") for b, v in found):
        fixed = repair([v for v in validators if v.on_fail != "flag"], output, ctx)
        if fixed is not None and fixed.output.text == output.text:  # the text has left: only calls change
            output, repairs = fixed.output, fixed.changes
            found = _found(validators, output, ctx)
    blocking = [v for b, v in found if b]
    reported = list(dict.fromkeys([*relay.violations, *(v for _, v in found)]))
    outcome = decide(
        rejected=bool(blocking),
        flagged=bool(found),
        fallback=fallback,
        repaired=bool(repairs),
        redacted=redacted,
    )
    return Settled(outcome, blocking, reported, output.tool_calls, repairs)
