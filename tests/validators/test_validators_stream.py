"""StreamGuard: what is released, what is held back, redaction in place, stopping."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from validators import (
    GuardStep,
    Output,
    Registry,
    RequestContext,
    StreamGuard,
    Validator,
    default_registry,
    redact,
)
from validators._tokens import offline_token_counter
from validators.stream import _TokenTally

CTX = RequestContext()
REGISTRY = default_registry(plugins=False)
TOKEN_COUNT = offline_token_counter()
SENSITIVE = [
    "mail jane.doe@example.com now",
    "card 4111 1111 1111 1111 ok",
    "call +1 415 555 2671 today",
    "we love Competitor   Inc a lot",
    "key sk-proj-abcdefghijklmnopqrstuvwx12 leaked",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
]


def _run(guard: StreamGuard, chunks: list[str]) -> tuple[str, list[GuardStep]]:
    steps = [guard.feed(c) for c in chunks]
    steps.append(guard.finish())
    return "".join(s.release for s in steps), steps


def _chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


def _redacting() -> list[Validator]:
    return [
        REGISTRY.create({"type": "pii", "on_fail": "redact"}),
        REGISTRY.create({"type": "phrases", "deny": ["competitor inc"], "on_fail": "redact"}),
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(SENSITIVE + ["plain words. ", "x" * 40, "\n"]), min_size=1, max_size=6),
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_streamed_redaction_equals_whole_text_redaction(parts: list[str], cuts: list[int]) -> None:
    text = " ".join(parts)
    validators = _redacting()
    released, steps = _run(StreamGuard(validators, CTX), _chunks(text, cuts))
    expected, _ = redact(validators, Output(text), CTX)
    assert released == expected.text
    assert not any(s.stop for s in steps)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SENSITIVE), st.lists(st.integers(0, 10_000), max_size=12))
def test_reject_mode_never_releases_the_violation(secret: str, cuts: list[int]) -> None:
    text = "Intro text that is fine. " * 3 + secret + " and more text after it."
    validators = [
        REGISTRY.create({"type": "pii"}),
        REGISTRY.create({"type": "phrases", "deny": ["competitor inc"]}),
    ]
    released, steps = _run(StreamGuard(validators, CTX), _chunks(text, cuts))
    assert any(s.stop for s in steps)
    stop_at = next(i for i, s in enumerate(steps) if s.stop)
    assert all(s.release == "" for s in steps[stop_at:])
    assert text.startswith(released)
    first_finding = min(span.start for v in validators for span in v.find(text))  # type: ignore[attr-defined]
    assert len(released) <= first_finding  # not one character of the finding leaves
    assert steps[stop_at].violations


def test_text_flows_through_when_nothing_needs_holding(registry: Registry) -> None:
    guard = StreamGuard([registry.create({"type": "json"})], CTX)
    assert guard.feed("hello ").release == "hello "
    assert guard.feed("world").release == "world"
    assert guard.finish() == GuardStep("", [], False)


def test_hold_back_is_only_the_match_window(registry: Registry) -> None:
    guard = StreamGuard([registry.create({"type": "regex", "deny": ["bad word"]})], CTX)
    step = guard.feed("x" * 100)
    assert step.release == "x" * 92  # the pattern spans at most 8 characters
    assert guard.finish().release == "x" * 8


def test_flag_mode_reports_once_and_releases_unchanged(registry: Registry) -> None:
    guard = StreamGuard([registry.create({"type": "pii", "entities": ["email"], "on_fail": "flag"})], CTX)
    text = "contact a@example.com please " + "." * 300
    released, steps = _run(guard, list(text))
    assert released == text
    assert [v.message for s in steps for v in s.violations] == ["the output contains an email address"]
    assert guard.violations == [v for s in steps for v in s.violations]


def test_length_redact_cuts_and_reject_stops(registry: Registry) -> None:
    cut = StreamGuard([registry.create({"type": "length", "max_chars": 10, "on_fail": "redact"})], CTX)
    released, steps = _run(cut, ["0123456", "789abc", "def"])
    assert released == "0123456789" and not any(s.stop for s in steps)
    stop = StreamGuard([registry.create({"type": "length", "max_chars": 10})], CTX)
    released, steps = _run(stop, ["0123456", "789abc", "def"])
    assert released == "0123456" and steps[1].stop


def test_whole_text_rules_are_checked_at_finish(registry: Registry) -> None:
    guard = StreamGuard(
        [
            registry.create({"type": "regex", "require": ["DONE$"]}),
            registry.create({"type": "length", "min_chars": 50, "on_fail": "flag"}),
        ],
        CTX,
    )
    assert guard.feed("all good").release == "all good"
    final = guard.finish()
    assert final.stop and [v.validator for v in final.violations] == ["regex", "length"]


def test_max_tokens_stops_a_long_stream(registry: Registry) -> None:
    guard = StreamGuard([registry.create({"type": "length", "max_tokens": 50})], CTX)
    steps = [guard.feed("word " * 5) for _ in range(30)]
    assert any(s.stop for s in steps)
    released = "".join(s.release for s in steps)
    assert 150 <= len(released) <= 300


def test_a_phrase_padded_with_invisible_characters_is_still_caught(registry: Registry) -> None:
    guard = StreamGuard(
        [registry.create({"type": "phrases", "deny": ["competitor inc"], "on_fail": "redact"})], CTX
    )
    padded = ("\u200b" * 5).join("competitor inc")  # 79 characters: far beyond the 36-character window
    text = "We like " + padded + " a lot."
    released, _ = _run(guard, list(text))
    assert released == "We like [REDACTED] a lot."


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.sampled_from(["hello", "world,", " ", "  ", "\n", "Über", "don't", "🙂", "日本語", "x=1;", "42"]),
        min_size=50,
        max_size=400,
    ),
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
)
def test_incremental_token_count_equals_a_full_count(words: list[str], sizes: list[int]) -> None:
    count = TOKEN_COUNT
    assert count is not None
    text = " ".join(words)
    tally, pos, total, i = _TokenTally(count), 0, 0, 0
    while pos < len(text):
        size = sizes[i % len(sizes)]
        total, pos, i = tally.add(text[pos : pos + size]), pos + size, i + 1
    assert total == count(text)


def test_finds_spans_agrees_with_the_protocol_check_for_every_builtin_validator() -> None:
    """The stream guard's cheap check picks exactly the validators `isinstance(v, SpanValidator)` does."""
    from validators import SpanValidator
    from validators.base import finds_spans

    specs = [
        {"type": "json"},
        {"type": "json_schema", "schema": {"type": "object"}},
        {"type": "regex", "deny": ["x+"]},
        {"type": "regex", "require": ["y"]},
        {"type": "phrases", "deny": ["no"]},
        {"type": "pii"},
        {"type": "length", "max_chars": 10},
    ]
    built = [REGISTRY.create(spec) for spec in specs]
    assert {s["type"] for s in specs} == set(REGISTRY.names()) - {"python", "tool_calls"}  # those need code
    assert [finds_spans(v) for v in built] == [isinstance(v, SpanValidator) for v in built]
    assert sum(finds_spans(v) for v in built) == 4  # regex (both), phrases, pii
