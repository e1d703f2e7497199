"""Linear-time regular expressions (RE2): one compile helper with quiet errors and a bounded cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import re2

__all__ = ["UnsupportedPattern", "compile_re2", "searcher", "spans"]


class UnsupportedPattern(ValueError):
    """The pattern is invalid, or uses syntax RE2 cannot run in linear time (look-around, back-references)."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 64 << 20
    return options


@lru_cache(maxsize=1024)
def compile_re2(pattern: str) -> Any:
    """Compile `pattern` with RE2; raise UnsupportedPattern with RE2's reason when it cannot."""
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise UnsupportedPattern(
            f"{reason} (patterns run on RE2, a linear-time engine without look-around or back-references)"
        ) from None


_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED
_NO_MATCH = (-1, -1)


@lru_cache(maxsize=1024)
def searcher(pattern: str) -> Callable[[str], bool]:
    """`compile_re2(pattern).search(text) is not None`, about 8x cheaper: no match object, no offsets.

    The wrapper's `search` builds a generator, maps byte offsets back to characters and a `_Match`;
    a yes/no answer needs only RE2's own call on the UTF-8 bytes (encoded exactly as the wrapper does,
    so a lone surrogate raises the same UnicodeEncodeError).
    """
    match = compile_re2(pattern)._regexp.Match

    def found(text: str) -> bool:
        data = text.encode("utf-8")
        return bool(match(_UNANCHORED, data, 0, len(data))[0] != _NO_MATCH)

    return found


def spans(regex: Any, text: str) -> Iterator[tuple[int, int]]:
    """`(m.start(), m.end())` for each `m` in `regex.finditer(text)` (a `compile_re2` result), cheaper.

    The same walk as the wrapper's (an empty match moves on by one character), without a match object
    per finding; byte offsets become character offsets by decoding only the bytes between two matches.
    """
    data = text.encode("utf-8")
    match = regex._regexp.Match
    ascii_only = len(data) == len(text)
    pos, end = 0, len(data)
    byte_at = char_at = 0  # the last offset converted, in bytes and in characters
    while True:
        start, stop = match(_UNANCHORED, data, pos, end)[0]
        if start == -1:
            return
        if ascii_only:
            yield start, stop
        else:
            char_start = char_at + len(data[byte_at:start].decode("utf-8"))
            char_at = char_start + len(data[start:stop].decode("utf-8"))
            byte_at = stop
            yield char_start, char_at
        if pos == end:
            return
        if pos == stop:  # an empty match here: step over one character
            pos += 1 if ascii_only else re2._re2.CharLenToBytes(data, pos, 1)
        else:
            pos = stop
