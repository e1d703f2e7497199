"""Deterministic sample strings for JSON Schema string formats."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
)


def word(rng: random.Random) -> str:
    """One sample word."""
    return rng.choice(WORDS)


def _date(rng: random.Random) -> str:
    return f"20{rng.randint(10, 29)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ipv6(rng: random.Random) -> str:
    return "2001:db8::" + format(rng.randint(1, 0xFFFF), "x")


FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date": _date,
    "time": _time,
    "date-time": lambda rng: f"{_date(rng)}T{_time(rng)}",
    "duration": lambda rng: f"P{rng.randint(1, 30)}DT{rng.randint(1, 23)}H",
    "email": lambda rng: f"{word(rng)}{rng.randint(1, 99)}@example.com",
    "idn-email": lambda rng: f"{word(rng)}{rng.randint(1, 99)}@example.com",
    "hostname": lambda rng: f"{word(rng)}.example.com",
    "idn-hostname": lambda rng: f"{word(rng)}.example.com",
    "ipv4": lambda rng: f"192.0.2.{rng.randint(1, 254)}",
    "ipv6": _ipv6,
    "uri": lambda rng: f"https://example.com/{word(rng)}/{rng.randint(1, 999)}",
    "iri": lambda rng: f"https://example.com/{word(rng)}/{rng.randint(1, 999)}",
    "uri-reference": lambda rng: f"/{word(rng)}/{rng.randint(1, 999)}",
    "iri-reference": lambda rng: f"/{word(rng)}/{rng.randint(1, 999)}",
    "uri-template": lambda rng: f"https://example.com/{word(rng)}/{{id}}",
    "uuid": _uuid,
    "json-pointer": lambda rng: f"/{word(rng)}/{rng.randint(0, 9)}",
    "relative-json-pointer": lambda rng: f"{rng.randint(0, 3)}/{word(rng)}",
    "regex": lambda rng: f"^{word(rng)}[0-9]+$",
}
