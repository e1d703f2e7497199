"""The stored answer: orjson bytes of ``{"v": 1, "response", "deployment", "outcome", "repairs", "created"}``.

Only answers that ended valid (or `flagged` in monitor mode) may be stored; `encode_entry` refuses any
other outcome, and `decode_entry` returns None for anything malformed, from another format version,
or carrying an outcome that may not be served from the cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "CachedAnswer",
    "ENTRY_VERSION",
    "STORABLE_OUTCOMES",
    "decode_entry",
    "encode_entry",
    "mentions_secret",
]

ENTRY_VERSION = 1
STORABLE_OUTCOMES = frozenset({"pass", "repaired", "reasked", "fallback", "flagged", "redacted"})


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A cached final answer: the OpenAI completion (or embeddings) dict and how it was produced."""

    response: dict[str, Any]
    deployment: str
    outcome: str
    repairs: tuple[str, ...]
    created: float


def encode_entry(
    *, response: dict[str, Any], deployment: str, outcome: str, repairs: Sequence[str], created: float
) -> bytes:
    """Serialise a final answer; ValueError for an outcome that must never be cached."""
    if outcome not in STORABLE_OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not cacheable")
    document = {
        "v": ENTRY_VERSION,
        "response": response,
        "deployment": deployment,
        "outcome": outcome,
        "repairs": list(repairs),
        "created": created,
    }
    return orjson.dumps(document)


def mentions_secret(entry: bytes, secrets: Iterable[str]) -> bool:
    """True when an encoded entry holds one of `secrets` verbatim, anywhere (text, tool-call arguments).

    Compared in JSON-escaped form, as `encode_entry` writes strings; a plain substring test per secret.
    """
    return any(orjson.dumps(secret)[1:-1] in entry for secret in secrets if secret)


def decode_entry(data: bytes | None) -> CachedAnswer | None:
    """Parse stored bytes back into a `CachedAnswer`; None for a miss (None) or anything malformed."""
    if data is None:
        return None
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or document.get("v") != ENTRY_VERSION:
        return None
    response = document.get("response")
    deployment = document.get("deployment")
    outcome = document.get("outcome")
    repairs = document.get("repairs")
    created = document.get("created")
    if (
        not isinstance(response, dict)
        or not (isinstance(response.get("choices"), list) or isinstance(response.get("data"), list))
        or not isinstance(deployment, str)
        or outcome not in STORABLE_OUTCOMES
        or not isinstance(repairs, list)
        or not all(isinstance(r, str) for r in repairs)
        or not isinstance(created, int | float)
        or isinstance(created, bool)
    ):
        return None
    return CachedAnswer(response, deployment, str(outcome), tuple(repairs), float(created))
