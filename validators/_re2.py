"""Linear-time regular expressions (RE2): one compile helper with quiet errors and a bounded cache."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

__all__ = ["UnsupportedPattern", "compile_re2"]


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
