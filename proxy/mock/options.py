"""The mock behaviours' names and options, checked with did-you-mean messages."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from proxy.mock.defects import DEFECTS

__all__ = [
    "BEHAVIOURS",
    "ERROR_STATUSES",
    "FAULTS",
    "MALFORMED_BODIES",
    "MockConfigError",
    "validate_options",
]

ERROR_STATUSES = (400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504)
MALFORMED_BODIES = ("html", "truncated", "wrong_content_type")
FAULTS = (400, 401, 429, 500, 502, 503, "timeout", "cut", "malformed", "stall", "stream_error")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


Loc = tuple[str | int, ...]


class MockConfigError(ValueError):
    """A mock behaviour, option or value that does not exist; `loc` is the option's path in `mock:`."""

    def __init__(self, message: str, loc: Loc = ()) -> None:
        self.message = message
        self.loc = loc
        self.where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        super().__init__(f"{self.where}: {message}" if self.where else message)


Check = Callable[[Any], str | None]  # returns what is wrong, or None


def _number(low: float, high: float | None = None) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
        if value < low or (high is not None and value > high):
            return f"must be between {low} and {high}" if high is not None else f"must be >= {low}"
        return None

    return check


def _integer(low: int, high: int | None = None) -> Check:
    number = _number(low, high)
    return lambda v: (
        number(v) if isinstance(v, int) and not isinstance(v, bool) else f"must be an integer, got {v!r}"
    )


def _one_of(choices: tuple[Any, ...]) -> Check:
    def check(value: Any) -> str | None:
        if value in choices and not isinstance(value, bool):
            return None
        expected = ", ".join(map(str, choices))
        return f"unknown value {value!r}{_did_you_mean(value, choices)}; expected one of {expected}"

    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, got {type(value).__name__}"


def _tool_calls(value: Any) -> str | None:
    if not isinstance(value, list) or not all(
        isinstance(c, Mapping) and ("function" in c or "name" in c) for c in value
    ):
        return "must be a list of tool calls: {name, arguments} or {id?, type: function, function: {...}}"
    return None


def _faults(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list"
    return next((_one_of(FAULTS)(v) for v in value if _one_of(FAULTS)(v)), None)


COMMON: Mapping[str, Check] = {
    "latency_ms": _number(0),
    "stream_chunk_chars": _integer(1),
    "chunk_delay_ms": _number(0),
    "seed": _integer(-(2**63), 2**63),
    "stream_cut": lambda v: None if isinstance(v, bool) else "must be true or false",
    "dimensions": _integer(1, 8192),
    "finish_reason": _one_of(FINISH_REASONS),
}
BEHAVIOURS: Mapping[str, Mapping[str, Check]] = {
    "echo": {},
    "static": {"content": _text, "tool_calls": _tool_calls},
    "schema": {"auto_tools": lambda v: None if isinstance(v, bool) else "must be true or false"},
    "broken-json": {"defect": _one_of(DEFECTS)},
    "error": {"status": _one_of(ERROR_STATUSES), "retry_after": _number(0), "message": _text},
    "timeout": {},
    "script": {
        "script": lambda v: None if isinstance(v, list) and v else "must be a non-empty list of steps"
    },
    "malformed": {"body": _one_of(MALFORMED_BODIES)},
    "stall": {},
    "stream_error": {"content": _text, "message": _text},
    "flaky": {
        "fault_rate": _number(0, 1),
        "faults": _faults,
        "content": _text,
        "retry_after": _number(0),
    },
}


def validate_options(behaviour: str, options: Mapping[str, Any], loc: Loc = ()) -> None:
    """Raise MockConfigError for an unknown behaviour, option or value (script steps included)."""
    if behaviour not in BEHAVIOURS:
        raise MockConfigError(
            f"unknown mock behaviour {behaviour!r}{_did_you_mean(behaviour, BEHAVIOURS)}", loc
        )
    allowed = {**COMMON, **BEHAVIOURS[behaviour]}
    for key, value in options.items():
        check = allowed.get(key)
        if check is None:
            hint = _did_you_mean(key, allowed)
            raise MockConfigError(f"unknown option {key!r} for mock/{behaviour}{hint}", (*loc, key))
        problem = check(value)
        if problem:
            raise MockConfigError(problem, (*loc, key))
    for index, step in enumerate(options.get("script") or ()):
        step_loc = (*loc, "script", index)
        if not isinstance(step, Mapping) or not isinstance(step.get("behaviour"), str):
            raise MockConfigError("a script step must be a mapping with a `behaviour`", step_loc)
        name = step["behaviour"]
        if name == "script" or name not in BEHAVIOURS:
            hint = _did_you_mean(name, BEHAVIOURS)
            message = (
                "a script step cannot be another script"
                if name == "script"
                else f"unknown mock behaviour {name!r}{hint}"
            )
            raise MockConfigError(message, (*step_loc, "behaviour"))
        validate_options(name, {k: v for k, v in step.items() if k != "behaviour"}, step_loc)


def _did_you_mean(name: Any, choices: Any) -> str:
    matches = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""
