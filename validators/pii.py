"""The `pii` validator: personal data and secrets, found, reported without echoing them, redactable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from validators._options import Options, did_you_mean
from validators._pii_detect import DETECTORS, detect, scan
from validators._pii_stream import pii_pending, pii_window
from validators._scan import targets
from validators.base import BuildContext, Output, RequestContext, Span, ValidatorConfigError, Violation

__all__ = ["ENTITIES", "PiiValidator", "pii_factory"]

ENTITIES = tuple(d.entity for d in DETECTORS)


class PiiValidator:
    """Finds emails, phones, credit cards (Luhn), US SSNs, IBANs (mod 97), IP addresses and secrets."""

    type = "pii"

    def __init__(self, entities: tuple[str, ...] = ENTITIES, on_fail: str | None = None) -> None:
        self.entities = frozenset(entities)
        self.on_fail = on_fail
        self.window = pii_window(self.entities)  # bounded entities; `pending` covers the rest

    def find(self, text: str) -> list[Span]:
        """Every finding, with its placeholder (`[EMAIL]`, `[SECRET]`, ...) and name (`pii:email`)."""
        return self.find_extents(text)[0]

    def pending(self, text: str) -> int | None:
        """Where an e-mail, key or private-key block may still be arriving at the end of `text`."""
        return pii_pending(text, self.entities)

    def find_extents(self, text: str) -> tuple[list[Span], list[tuple[int, int]]]:
        """`find`, and the extent of every raw match (a stream never cuts its context inside one)."""
        found, extents = scan(text, self.entities)
        spans = [
            Span(start, end, det.placeholder, f"pii:{det.entity}", f"the output contains {det.label}")
            for start, end, det in found
        ]
        return spans, extents

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        """One violation per kind of finding per place; the finding itself is never quoted."""
        out: list[Violation] = []
        for path, text in targets(output):
            where = "the output" if path is None else f"the tool-call argument at {path}"
            seen: dict[str, int] = {}
            for _, _, det in detect(text, self.entities):
                seen[det.label] = seen.get(det.label, 0) + 1
            for label, count in seen.items():
                times = "" if count == 1 else f" ({count} occurrences)"
                out.append(Violation(self.type, f"{where} contains {label}{times}", path))
        return out


def pii_factory(spec: Mapping[str, Any], context: BuildContext) -> PiiValidator:
    """Build `type: pii` (`entities`, default all of them)."""
    opts = Options("pii", spec, ("entities",))
    entities = opts.str_list("entities") if opts.has("entities") else list(ENTITIES)
    for i, name in enumerate(entities):
        if name not in ENTITIES:
            hint = did_you_mean(name, ENTITIES)
            raise ValidatorConfigError(
                f"unknown entity '{name}'{hint}; known: {', '.join(ENTITIES)}",
                key="entities",
                index=i,
            )
    if not entities:
        raise ValidatorConfigError("entities must name at least one entity", key="entities")
    return PiiValidator(tuple(entities), opts.on_fail())
