"""How much of a streamed text a pattern could still be matching: widths, alphabets and open runs.

A stream may only release text that no match still in progress could cover. A pattern of bounded
width `w` needs the last `w` characters held. An unbounded one (`[A-Za-z0-9]{20,}`, an e-mail) can
only match characters of its alphabet, so a match still in progress lies inside the trailing run of
such characters: that whole run is held until a character outside the alphabet arrives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

__all__ = ["Alphabet", "alphabet_of", "max_width", "run_start"]

_ASCII = frozenset(chr(i) for i in range(128))
_DIGITS = frozenset("0123456789")
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_SPACE = frozenset("\t\n\f\r ")  # RE2's \d \w \s are ASCII-only


@dataclass(frozen=True)
class Alphabet:
    """The characters a pattern can match: a set of ASCII characters, plus maybe any non-ASCII one."""

    ascii: frozenset[str]
    other: bool = False

    @cached_property
    def chars(self) -> str:
        """The ASCII characters as one string (for `str.rstrip`)."""
        return "".join(sorted(self.ascii))

    def __or__(self, more: Alphabet) -> Alphabet:
        return Alphabet(self.ascii | more.ascii, self.other or more.other)

    def __contains__(self, ch: object) -> bool:
        return isinstance(ch, str) and (ch in self.ascii if ch.isascii() else self.other)

    def complement(self) -> Alphabet:
        """Every character not in this alphabet (non-ASCII ones are kept: an over-estimate is safe)."""
        return Alphabet(_ASCII - self.ascii, True)


_NONE = Alphabet(frozenset())
_CATEGORIES = {"DIGIT": _DIGITS, "WORD": _WORD, "SPACE": _SPACE}


def _parse(pattern: str) -> Any:
    parser: Any = getattr(re, "_parser", None)
    return parser.parse(pattern) if parser is not None else None


def max_width(pattern: str) -> int | None:
    """The longest text `pattern` can match, when Python's parser can bound it."""
    try:
        parsed = _parse(pattern)
        width = parsed.getwidth()[1] if parsed is not None else None
    except Exception:  # noqa: BLE001 - RE2 syntax that Python's parser rejects: no bound known
        return None
    return int(width) if width is not None and width < 100_000 else None


def _category(name: str) -> Alphabet:
    negated = name.startswith("CATEGORY_NOT_")
    chars = _CATEGORIES.get(name.removeprefix("CATEGORY_NOT_").removeprefix("CATEGORY_"))
    if chars is None:
        return Alphabet(_ASCII, True)  # a line-break category or similar: assume anything
    return Alphabet(chars).complement() if negated else Alphabet(chars)


def _char(code: int) -> Alphabet:
    ch = chr(code)
    return Alphabet(frozenset({ch})) if ch.isascii() else Alphabet(frozenset(), True)


def _class(items: Any) -> Alphabet:
    out, negate = _NONE, False
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            out = out | _char(av)
        elif name == "RANGE":
            lo, hi = av
            out = out | Alphabet(frozenset(chr(c) for c in range(lo, min(hi, 127) + 1)), hi > 127)
        elif name == "CATEGORY":
            out = out | _category(str(av))
        else:
            return Alphabet(_ASCII, True)
    return out.complement() if negate else out


def _walk(items: Any, dotall: bool) -> Alphabet:
    out = _NONE
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            out = out | _char(av)
        elif name == "NOT_LITERAL":
            out = out | _char(av).complement()
        elif name == "ANY":
            out = out | Alphabet(_ASCII if dotall else _ASCII - {"\n"}, True)
        elif name == "IN":
            out = out | _class(av)
        elif name == "BRANCH":
            for branch in av[1]:
                out = out | _walk(branch, dotall)
        elif name == "SUBPATTERN":
            out = out | _walk(av[3], dotall or bool(av[1] & re.DOTALL))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            out = out | _walk(av[2], dotall)
        elif name == "ATOMIC_GROUP":
            out = out | _walk(av, dotall)
        elif name != "AT":  # anchors match no character; anything else: be safe
            return Alphabet(_ASCII, True)
    return out


def alphabet_of(pattern: str) -> Alphabet | None:
    """Every character a match of `pattern` can contain (an over-estimate), or None when unknown."""
    try:
        parsed = _parse(pattern)
    except Exception:  # noqa: BLE001 - RE2-only syntax: the caller falls back to a fixed window
        return None
    if parsed is None:
        return None
    flags = parsed.state.flags
    found = _walk(parsed, bool(flags & re.DOTALL))
    if flags & re.IGNORECASE or "(?i" in pattern:
        found = found | Alphabet(frozenset(c.swapcase() for c in found.ascii))
    return found


def run_start(text: str, alphabet: Alphabet) -> int | None:
    """Where the run of `alphabet` characters that ends `text` begins (None when `text` ends outside)."""
    if not alphabet.other:
        i = len(text.rstrip(alphabet.chars))  # str.rstrip runs in C: a long held run costs little
    else:
        i = len(text)
        while i > 0 and text[i - 1] in alphabet:
            i -= 1
    return i if i < len(text) else None
