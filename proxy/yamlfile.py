"""YAML loading that remembers where each value came from, and `${VAR}` expansion."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "Located", "Problem", "did_you_mean", "format_where", "load_yaml"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One problem in a config or policy file, printed as `FILE:LINE: where: what`."""

    file: str
    line: int
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.where}: {self.what}"


class ConfigError(Exception):
    """A config or policy file is invalid; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Located:
    """Parsed YAML data plus the line of every key path."""

    path: Path
    data: Any
    lines: Mapping[Loc, int]

    def line(self, loc: Iterable[str | int]) -> int:
        """The line of `loc`, or of its nearest parent that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: Iterable[str | int], what: str) -> Problem:
        loc = tuple(loc)
        return Problem(str(self.path), self.line(loc), format_where(loc), what)


def format_where(loc: Iterable[str | int]) -> str:
    """`("models", "a", "deployments", 0, "timeout")` -> `models.a.deployments[0].timeout`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top)"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a close choice exists, else ``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_yaml(path: Path, *, expand_env: bool = True, environ: Mapping[str, str] | None = None) -> Located:
    """Parse `path`; raise ConfigError with FILE:LINE on syntax errors or missing variables."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), 1, "(file)", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(str(path), line, "(syntax)", f"invalid YAML: {what}")]) from None
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    loader = yaml.SafeLoader("")
    data = _convert(loader, node, (), lines, problems, path, env if expand_env else None)
    if problems:
        raise ConfigError(problems)
    return Located(path, data, lines)


def _convert(
    loader: yaml.SafeLoader,
    node: yaml.Node | None,
    loc: Loc,
    lines: dict[Loc, int],
    problems: list[Problem],
    path: Path,
    env: Mapping[str, str] | None,
) -> Any:
    if node is None:
        return None
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node))  # type: ignore[no-untyped-call]
            if key in out:
                problems.append(
                    Problem(
                        str(path), key_node.start_mark.line + 1, format_where(loc + (key,)), "duplicate key"
                    )
                )
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, loc + (key,), lines, problems, path, env)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(loader, item, loc + (i,), lines, problems, path, env)
            for i, item in enumerate(node.value)
        ]
    value = loader.construct_object(node)  # type: ignore[no-untyped-call]
    if env is not None and isinstance(value, str) and "${" in value:
        value = _expand(
            value,
            env,
            lambda what: problems.append(
                Problem(str(path), node.start_mark.line + 1, format_where(loc), what)
            ),
        )
        if getattr(node, "style", None) is None and isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else value
    return value


def _expand(value: str, env: Mapping[str, str], report: Any) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        report(f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")
        return ""

    return _VAR.sub(sub, value)
