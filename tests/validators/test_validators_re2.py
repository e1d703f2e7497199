"""The fast RE2 helpers answer exactly as the re2 wrapper's `search` and `finditer` do."""

from __future__ import annotations

import pytest

from validators._pii_detect import DETECTORS
from validators._re2 import compile_re2, searcher, spans

PATTERNS = [
    "^[A-Z]{2}-[0-9]{4,6}$",
    "",
    "x*",
    "a|",
    "\\bé+",
    "[^a]",
    "(a)(b)?",
    "$",
    *(d.pattern for d in DETECTORS),
]
TEXTS = [
    "",
    "KB-1234",
    "KB-1234\n",
    "aaxaxxa",
    "café éé ba ab",
    "日本語 a b ééé",
    "mail ada@example.org at 08:00:00 from 10.0.12.7 or ::1, call +1 415 555 2671",
    "naïve ada@exämple.org ✓ 2001:db8::1 AKIAABCDEFGHIJKLMNOP and 4111 1111 1111 1111",
    "😀x😀xx",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_searcher_and_spans_agree_with_the_wrapper(pattern: str) -> None:
    regex = compile_re2(pattern)
    found = searcher(pattern)
    for text in TEXTS:
        assert found(text) is (regex.search(text) is not None), (pattern, text)
        assert list(spans(regex, text)) == [m.span() for m in regex.finditer(text)], (pattern, text)


def test_a_lone_surrogate_fails_as_in_the_wrapper() -> None:
    with pytest.raises(UnicodeEncodeError):
        compile_re2("a").search("\ud800")
    with pytest.raises(UnicodeEncodeError):
        searcher("a")("\ud800")


def test_the_ip_shortcut_only_skips_what_ipaddress_refuses() -> None:
    import ipaddress
    import itertools

    from validators._pii_detect import _ip

    groups = ["0", "08", "db8", "ffff", "", "1.2.3.4"]
    for n in range(1, 9):
        for parts in itertools.islice(itertools.product(groups, repeat=n), 3000):
            text = ":".join(parts)
            try:
                ipaddress.ip_address(text)
                valid = True
            except ValueError:
                valid = False
            if not valid:
                assert not _ip(text), text
            elif ":" in text:
                assert _ip(text) is (any(c.isdigit() for c in text) and len(text) >= 3), text
