"""What a pii finding still in progress could cover at the end of a streamed text.

Bounded entities (cards, IBANs, SSNs, IPs, phones) need their longest match held, plus the few
characters their edge checks look at. E-mails and API keys are unbounded: they can only contain
their alphabet's characters, so the whole trailing run of those characters is held. A private-key
header opens a block that runs to its END line (or over all the base64 after it when none comes):
it is held from the header until the END line arrives or the stream ends.
"""

from __future__ import annotations

from validators._holdback import Alphabet, alphabet_of, max_width, run_start
from validators._pii_detect import DETECTORS, PRIVATE_KEY, SECRET_TOKENS
from validators._re2 import compile_re2

__all__ = ["pii_pending", "pii_window"]

_EDGE = 3  # a trailing \b and the no-touch check read up to two characters past a match
_BEGIN = "-----BEGIN "
_HEADER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -")


def _alphabet(pattern: str) -> Alphabet:
    found = alphabet_of(pattern)
    if found is None:  # cannot happen for the shipped patterns: fail loudly at import
        raise ValueError(f"no alphabet for {pattern!r}")
    return found


_WIDTHS = {d.entity: max_width(d.pattern) for d in DETECTORS}
_RUNS = {
    "secret": _alphabet("|".join(SECRET_TOKENS)),
    "email": _alphabet(next(d.pattern for d in DETECTORS if d.entity == "email")),
}


def pii_window(entities: frozenset[str]) -> int:
    """The characters to hold at the end for the bounded entities among `entities`."""
    widths = [w + _EDGE for e, w in _WIDTHS.items() if e in entities and w is not None]
    return max([len(_BEGIN), *widths]) if "secret" in entities else max(widths, default=0)


def _open_key(text: str) -> int | None:
    """Where a private-key block that is not closed yet (or a header still arriving) starts."""
    key = compile_re2(PRIVATE_KEY)
    at = text.find(_BEGIN)
    while at != -1:
        m = key.match(text, at)
        if m is None:
            if all(c in _HEADER_CHARS for c in text[at + len(_BEGIN) :]):
                return at  # the header is still arriving
            at = text.find(_BEGIN, at + 1)
        elif "-----END " in m.group() and m.group().endswith("KEY-----"):
            at = text.find(_BEGIN, m.end())  # closed: final
        else:
            return at  # no END line yet: the block may run on
    return None


def pii_pending(text: str, entities: frozenset[str]) -> int | None:
    """The earliest start of an unbounded finding that may still be in progress at the end of `text`."""
    starts = [run_start(text, alphabet) for entity, alphabet in _RUNS.items() if entity in entities]
    if "secret" in entities and "-----BEGIN" in text:
        starts.append(_open_key(text))
    return min((s for s in starts if s is not None), default=None)
