"""Option checking for validator specs: unknown keys with a did-you-mean, typed getters."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from validators.base import ON_FAIL_MODES, ValidatorConfigError


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Options:
    """A validator's option mapping, checked against the keys it accepts."""

    def __init__(self, type_name: str, spec: Mapping[str, Any], allowed: Sequence[str]) -> None:
        self.type_name = type_name
        self._spec = {k: v for k, v in spec.items() if k != "type"}
        known = (*allowed, "on_fail")
        for key in self._spec:
            if not isinstance(key, str) or key not in known:
                hint = did_you_mean(str(key), known)
                raise ValidatorConfigError(
                    f"unknown option '{key}' for validator '{type_name}'{hint}", key=str(key)
                )

    def has(self, key: str) -> bool:
        """True when the spec sets `key`."""
        return key in self._spec

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as written."""
        return self._spec.get(key, default)

    def on_fail(self, allowed: Sequence[str] = ON_FAIL_MODES) -> str | None:
        """The per-validator `on_fail` override, checked against what this validator supports."""
        value = self._spec.get("on_fail")
        if value is None:
            return None
        if value not in allowed:
            choices = ", ".join(allowed)
            hint = did_you_mean(str(value), allowed)
            raise ValidatorConfigError(
                f"on_fail must be one of {choices} for '{self.type_name}', not {value!r}{hint}", key="on_fail"
            )
        return str(value)

    def str_list(self, key: str) -> list[str]:
        """A list of strings (a single string is accepted as a one-item list)."""
        value = self._spec.get(key, [])
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidatorConfigError(f"'{key}' must be a list of strings", key=key)
        return list(value)

    def int_or_none(self, key: str, *, minimum: int = 0) -> int | None:
        """A non-negative integer, or None when absent."""
        value = self._spec.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValidatorConfigError(f"'{key}' must be an integer >= {minimum}, not {value!r}", key=key)
        return value

    def string(self, key: str, default: str | None = None) -> str | None:
        """A string, or `default` when absent."""
        value = self._spec.get(key, default)
        if value is not None and not isinstance(value, str):
            raise ValidatorConfigError(f"'{key}' must be a string, not {value!r}", key=key)
        return value
