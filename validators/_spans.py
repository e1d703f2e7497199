"""Replacing found spans with their placeholders."""

from __future__ import annotations

from collections.abc import Sequence

from validators.base import Span


def apply_spans(text: str, spans: Sequence[Span], start: int = 0, end: int | None = None) -> str:
    """`text[start:end]` with every span (clipped to that range) replaced; overlapping spans merge."""
    stop = len(text) if end is None else end
    out: list[str] = []
    cursor = start
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        lo, hi = max(span.start, start), min(span.end, stop)
        if hi <= lo or hi <= cursor:
            continue
        if lo >= cursor:
            out.append(text[cursor:lo])
            out.append(span.placeholder)
        cursor = hi
    out.append(text[cursor:stop])
    return "".join(out)
