"""One scrubbing layer for anything that leaves the process: error bodies, logs, audit lines."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["scrub"]

_URL = re.compile(r"\b(?:https?|wss?|redis|rediss)://[^\s'\"<>]+", re.IGNORECASE)
_KEYISH = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[baprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,}|[Bb]earer\s+[A-Za-z0-9._\-]{8,})"
)

# Every match of the patterns above contains one of these; most text contains none and skips the regexes.
_URL_HINT = "://"
_KEY_HINTS = ("sk-", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "AIza", "earer")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove URLs, key-shaped strings and the given secrets from `text`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    if _URL_HINT in text:
        text = _URL.sub("[url]", text)
    if any(hint in text for hint in _KEY_HINTS):
        text = _KEYISH.sub("[redacted]", text)
    return text
