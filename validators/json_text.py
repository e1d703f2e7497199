"""JSON syntax repair: find the one document in the text, repair it with json-repair, keep only safe results.

Every repair is vetted by the lenient reader in `_lenient`, which accepts only the listed defect
classes and says which ones it met. Outside them (a cut inside a value, several documents, bare words)
nothing is repaired. Where the reading rests on a guess about where a string ends, json-repair must
read the same document, else nothing is repaired. Where the reading is certain and json-repair
differs, json-repair damaged string content (it drops a trailing newline, splits smart-quoted
strings into keys) and the reading stands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import json_repair

from validators._lenient import Reading, Refused, read_value
from validators.base import strict_json

__all__ = ["Recovered", "Refused", "recover_json"]

_MAX_STARTS = 64
_MAX_CHARS = 2_000_000
_OPENERS = {"object": "{", "array": "["}
# Readings that rest on a guess about where a string ends: json-repair must read the same document.
_JUDGEMENT_CALLS = frozenset({"unescaped_quote", "missing_comma"})
_DISAGREE = object()


@dataclass(frozen=True)
class Recovered:
    """A document read from a model's text, and the short names of what had to change."""

    value: Any
    changes: tuple[str, ...]


def _same(a: Any, b: Any) -> bool:
    """Deep equality that tells bool from int from float, keeps key order, and equates NaN with NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _starts(text: str, expect: str | None) -> list[int]:
    chars = _OPENERS[expect] if expect in _OPENERS else "{["
    found = [i for i, c in enumerate(text) if c in chars]
    return found[:_MAX_STARTS]


def _read(text: str, start: int) -> Reading:
    """Read at `start`; when that fails, retry with the text cut at a closing ``` fence after `start`."""
    try:
        return read_value(text, start)
    except Refused as exc:
        fence = text.find("```", start)
        if fence == -1:
            raise
        try:
            return read_value(text[:fence], start)
        except Refused:
            raise exc from None


def _locate(text: str, expect: str | None) -> tuple[int, Reading]:
    """The first place a document can be read: (start, reading).

    A brace in prose fails at once and the search moves on; a document that fails after items were
    read is broken JSON, and looking for a value nested inside it would return the wrong document.
    """
    last: Refused | None = None
    for start in _starts(text, expect):
        try:
            return start, _read(text, start)
        except Refused as exc:
            if exc.items_read:
                raise
            last = last or exc
    raise last or Refused("no JSON object or array found in the output")


def _another_value(text: str, expect: str | None) -> bool:
    for start in _starts(text, expect):
        try:
            read_value(text, start)
        except Refused:
            continue
        return True
    return False


def _escape_controls(candidate: str, offset: int, positions: tuple[int, ...]) -> str:
    """Escape raw control characters inside strings, which json-repair sometimes reads as structure."""
    if not positions:
        return candidate
    chars = list(candidate)
    for pos in positions:
        c = chars[pos - offset]
        chars[pos - offset] = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\u{ord(c):04x}")
    return "".join(chars)


def _surroundings(before: str, after: str) -> list[str]:
    """'fence' when the document sits in a ``` block, 'prose' when other text surrounds it."""
    changes: list[str] = []
    head, tail = before.rstrip(), after.lstrip()
    fence = head.rfind("```")
    tag = head[fence + 3 :].strip() if fence != -1 else ""
    if fence != -1 and (not tag or tag.replace("-", "").replace("+", "").replace("_", "").isalnum()):
        changes.append("fence")
        head = head[:fence]
        tail = tail[3:] if tail.startswith("```") else tail
    if head.strip() or tail.strip():
        changes.append("prose")
    return changes


def recover_json(text: str, expect: str | None = None, *, allow_truncated: bool = True) -> Recovered:
    """Read the one JSON document in `text`; `expect` ('object'/'array') skips other openers.

    Raise Refused when there is none, several, or when the repair needed is unsafe; with
    `allow_truncated=False` (the provider said the answer was cut) a missing end is refused too.
    """
    try:
        return Recovered(strict_json(text), ())
    except ValueError:
        pass
    if len(text) > _MAX_CHARS:
        raise Refused("the output is too large to repair")
    start, reading = _locate(text, expect)
    if "truncated" in reading.changes and not allow_truncated:
        raise Refused("the answer was cut off (finish_reason 'length'): closing it would guess the rest")
    if _another_value(text[reading.end :], expect):
        raise Refused("the output holds more than one JSON document")
    before, after = text[:start].rstrip()[-1:], text[reading.end :].lstrip()[:1]
    if before and after and before in "[,:" and after in "]},":
        raise Refused("the document found is part of a larger JSON structure")
    around = _surroundings(text[:start], text[reading.end :])
    if reading.changes:
        candidate = _escape_controls(text[start : reading.end], start, reading.raw_controls)
        try:
            repaired = strict_json(candidate)
        except ValueError:
            repaired = _json_repair(candidate)
        # json-repair alters string content in some certain cases (drops a trailing newline, splits
        # smart-quoted strings); there the reading stands. A reading that rests on a guess must agree.
        if not _same(repaired, reading.value) and _JUDGEMENT_CALLS.intersection(reading.changes):
            raise Refused("the repair is ambiguous (json-repair reads a different document)")
    return Recovered(reading.value, (*around, *reading.changes))


def _json_repair(candidate: str) -> Any:
    try:
        return json_repair.repair_json(candidate, return_objects=True, skip_json_loads=True)
    except Exception:  # noqa: BLE001 - a crash inside json-repair counts as a different reading
        return _DISAGREE
