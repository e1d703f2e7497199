"""Hold-back helpers: a pattern's alphabet covers every character any of its matches can contain."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from validators._holdback import alphabet_of, run_start

PATTERNS = [
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    r"\b[A-Za-z0-9][A-Za-z0-9._%+\-]*@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}\b",
    r"(?i)secret[ _-]?key\s*[:=]\s*\S+",
    r"[^\s,;]{30,}",
    r"x\d+(?:foo|bar)*.",
]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_match_lies_inside_the_alphabet(data: st.DataObject) -> None:
    pattern = data.draw(st.sampled_from(PATTERNS))
    match = data.draw(st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True))
    alphabet = alphabet_of(pattern)
    assert alphabet is not None
    assert all(c in alphabet for c in match)
    # so a match still arriving at the end of a text starts inside the trailing run
    text = "prefix, " + match
    start = run_start(text, alphabet)
    assert start is not None and start <= len("prefix, ")


def test_unknown_syntax_has_no_alphabet() -> None:
    assert alphabet_of(r"\p{Greek}+") is None
