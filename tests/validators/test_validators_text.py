"""regex, phrases, length and pii validators, and redaction."""

from __future__ import annotations

import json
import time

import pytest

from validators import Output, Registry, RequestContext, check, redact


def _call(args: dict[str, object]) -> dict[str, object]:
    return {"id": "c1", "type": "function", "function": {"name": "send", "arguments": json.dumps(args)}}


def test_regex_deny_and_require(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create(
        {"type": "regex", "deny": ["(?i)as an ai language model"], "require": [r"\bTicket-\d+\b"]}
    )
    assert check([v], Output("See Ticket-12."), ctx) == []
    found = check([v], Output("As an AI language model I cannot."), ctx)
    assert [x.message for x in found] == [
        "the output matches the denied pattern '(?i)as an ai language model'",
        "the output does not match the required pattern '\\\\bTicket-\\\\d+\\\\b'",
    ]


def test_regex_deny_sees_tool_call_arguments(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "regex", "deny": ["DROP TABLE"]})
    [found] = check([v], Output(None, (_call({"sql": "DROP TABLE users"}),)), ctx)
    assert found.path == "/tool_calls/0/function/arguments/sql"


def test_catastrophic_pattern_runs_in_linear_time(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "regex", "deny": ["(a+)+$"], "require": ["(x+x+)+y"]})
    hostile = "a" * 50_000 + "!"
    start = time.perf_counter()
    found = check([v], Output(hostile), ctx)
    elapsed = time.perf_counter() - start
    assert [x.message.split(" ")[3] for x in found] == [
        "not"
    ]  # the deny pattern does not match; require fails
    assert elapsed < 1.0, elapsed


def test_phrases_are_whole_words_case_and_lookalike_insensitive(
    registry: Registry, ctx: RequestContext
) -> None:
    v = registry.create({"type": "phrases", "deny": ["Competitor Inc"]})
    hits = [
        "We like competitor inc.",
        "COMPETITOR   INC rocks",
        "c\u043empetitor inc",  # Cyrillic o
        "ｃｏｍｐｅｔｉｔｏｒ ｉｎｃ",  # full-width
        "compe\u200btitor inc",  # zero-width space
        "comp\u00e9titor\ninc",  # accent and a line break
    ]
    misses = ["competitor incorporated", "noncompetitor inc", "competitorinc", "competitor"]
    for text in hits:
        assert check([v], Output(text), ctx), text
    for text in misses:
        assert check([v], Output(text), ctx) == [], text


def test_length_limits(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "length", "max_chars": 10, "min_chars": 2})
    assert check([v], Output("hello"), ctx) == []
    assert check([v], Output("x"), ctx)[0].message == "the output is 1 characters long; the minimum is 2"
    assert (
        check([v], Output("x" * 11), ctx)[0].message == "the output is 11 characters long; the maximum is 10"
    )


def test_max_tokens_counts_tokens_when_a_tokenizer_is_available(
    registry: Registry, ctx: RequestContext
) -> None:
    v = registry.create({"type": "length", "max_tokens": 5})
    assert check([v], Output("hello world"), ctx) == []
    assert "tokens long" in check([v], Output("hello world " * 10), ctx)[0].message


def test_max_tokens_without_a_tokenizer_is_a_config_error(ctx: RequestContext) -> None:
    from validators import Registry, ValidatorConfigError
    from validators.builtin import register

    registry = Registry(token_counter=lambda encoding: None)
    register(registry)
    with pytest.raises(ValidatorConfigError) as err:
        registry.create({"type": "length", "max_tokens": 100})
    assert err.value.key == "max_tokens" and "tokenizer" in str(err.value)


PII_TEXT = (
    "Write to jane.doe@example.com or call +1 415 555 2671. Card 4111 1111 1111 1111, SSN 123-45-6789, "
    "IBAN DE89 3704 0044 0532 0130 00, host 10.0.12.7 or 2001:db8::1, key sk-proj-abcdefghijklmnopqrstuvwx12."
)


def test_pii_finds_each_entity_without_quoting_it(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "pii"})
    found = check([v], Output(PII_TEXT), ctx)
    messages = " ".join(x.message for x in found)
    for label in (
        "email",
        "phone",
        "credit card",
        "social security",
        "IBAN",
        "IP address (2 occurrences)",
        "secret",
    ):
        assert label in messages
    for secret in ("jane.doe", "4111", "123-45", "DE89", "sk-proj"):
        assert secret not in messages


@pytest.mark.parametrize(
    "text",
    [
        "Card 4111 1111 1111 1112 failed the Luhn check",
        "SSN 000-12-3456 and 666-12-3456 are never issued",
        "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum",
        "version 1.2.3.4.5 and 999.1.1.1",
        "meet at 12:30:45 in std::vector land",
        "order 2024-01-15 costs 3.14159",
        "the sk-short key",
    ],
)
def test_pii_look_alikes_are_not_flagged(registry: Registry, ctx: RequestContext, text: str) -> None:
    assert check([registry.create({"type": "pii"})], Output(text), ctx) == []


def test_pii_entities_can_be_chosen(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "pii", "entities": ["email"]})
    assert [x.message for x in check([v], Output(PII_TEXT), ctx)] == ["the output contains an email address"]


def test_private_key_blocks_are_secrets(registry: Registry, ctx: RequestContext) -> None:
    block = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
    v = registry.create({"type": "pii", "entities": ["secret"], "on_fail": "redact"})
    out, names = redact([v], Output(f"here:\n{block}\nbye"), ctx)
    assert out.text == "here:\n[SECRET]\nbye" and names == ["pii:secret"]


def test_redaction_uses_stable_placeholders(registry: Registry, ctx: RequestContext) -> None:
    v = registry.create({"type": "pii", "on_fail": "redact"})
    out, names = redact([v], Output(PII_TEXT), ctx)
    assert out.text == (
        "Write to [EMAIL] or call [PHONE]. Card [CREDIT_CARD], SSN [SSN], IBAN [IBAN], host [IP_ADDRESS] or "
        "[IP_ADDRESS], key [SECRET]."
    )
    assert names == [
        "pii:email",
        "pii:phone",
        "pii:credit_card",
        "pii:ssn",
        "pii:iban",
        "pii:ip_address",
        "pii:secret",
    ]
    assert check([v], out, ctx) == []


def test_redaction_keeps_json_valid_and_covers_tool_arguments(
    registry: Registry, ctx: RequestContext
) -> None:
    v = registry.create({"type": "pii", "entities": ["email"], "on_fail": "redact"})
    out, names = redact(
        [v], Output('{"to": "a@example.com"}', (_call({"to": "b@example.com", "n": 1}),)), ctx
    )
    assert out.text == '{"to": "[EMAIL]"}'
    assert json.loads(out.tool_calls[0]["function"]["arguments"]) == {"to": "[EMAIL]", "n": 1}
    assert names == ["pii:email"]


def test_only_redact_mode_validators_redact(registry: Registry, ctx: RequestContext) -> None:
    keep = registry.create({"type": "pii", "entities": ["email"]})
    cut = registry.create({"type": "length", "max_chars": 5, "on_fail": "redact"})
    words = registry.create({"type": "phrases", "deny": ["secret plan"], "on_fail": "redact"})
    out, names = redact([keep, words], Output("mail a@b.co about the secret plan"), ctx)
    assert out.text == "mail a@b.co about the [REDACTED]" and names == ["phrases"]
    out, names = redact([cut], Output("0123456789"), ctx)
    assert out.text == "01234" and names == ["length:truncated"]
