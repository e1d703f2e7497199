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

MAX_DEPTH = 100  # nesting, aliases expanded: configs and policies stay far below it
MAX_ALIAS_VALUES = 100_000  # values aliases may add beyond the ones written out in the file
_CAP = 1 << 62  # sizes saturate here: a chain of aliases doubles them at every step
_TOO_DEEP = f"the YAML nests deeper than {MAX_DEPTH} levels"


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
    """Parse `path`; raise ConfigError with FILE:LINE on syntax errors, missing variables, alias loops
    and alias bombs (the shape is checked on the node graph before anything is expanded)."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        what = exc.strerror if isinstance(exc, OSError) else None
        raise ConfigError([Problem(str(path), 1, "(file)", f"cannot read: {what or exc}")]) from None
    node = _compose(text, path)
    _check_shape(node, path)
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    loader = yaml.SafeLoader("")
    data = _convert(loader, node, (), lines, problems, path, env if expand_env else None)
    if problems:
        raise ConfigError(problems)
    return Located(path, data, lines)


def _compose(text: str, path: Path) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(str(path), line, "(syntax)", f"invalid YAML: {what}")]) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise ConfigError([Problem(str(path), 1, "(syntax)", _TOO_DEEP)]) from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_shape(root: yaml.Node | None, path: Path) -> None:
    """Refuse alias loops, alias bombs ("billion laughs") and deep nesting before expanding anything.

    An alias makes the composed graph share a node, so the expanded size of every node is computed
    once, bottom-up and without recursion: linear in the file, whatever the aliases multiply to.
    """
    if root is None:
        return
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()  # the nodes on the current path: meeting one again is a loop
    todo: list[tuple[yaml.Node, bool]] = [(root, False)]
    while todo:
        node, done = todo.pop()
        nid = id(node)
        kids = _children(node)
        if done:
            entered.discard(nid)
            size[nid] = min(_CAP, 1 + sum(size[id(k)] for k in kids))
            depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[nid] > MAX_DEPTH:
                raise ConfigError([_at(path, node, _TOO_DEEP)])
            continue
        if nid in size:
            continue
        entered.add(nid)
        todo.append((node, True))
        for kid in kids:
            if id(kid) in entered:
                raise ConfigError([_at(path, kid, "an alias refers to a value that contains it (a loop)")])
            if id(kid) not in size:
                todo.append((kid, False))
    if size[id(root)] > len(size) + MAX_ALIAS_VALUES:
        what = f"aliases expand this file past {MAX_ALIAS_VALUES} extra values (an alias bomb?)"
        raise ConfigError([_at(path, root, what)])


def _at(path: Path, node: yaml.Node, what: str) -> Problem:
    return Problem(str(path), node.start_mark.line + 1, "(aliases)", what)


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
            key = str(_scalar(loader, key_node, loc, problems, path))
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
    value = _scalar(loader, node, loc, problems, path)
    if env is not None and isinstance(value, str) and "${" in value:
        # the variable's text is the value, never YAML again: `s3cret #tail` stays whole, `0123` stays
        # a string (typed fields such as `port` are converted by the config model)
        value = _expand(
            value,
            env,
            lambda what: problems.append(
                Problem(str(path), node.start_mark.line + 1, format_where(loc), what)
            ),
        )
    return value


def _scalar(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, problems: list[Problem], path: Path) -> Any:
    """One constructed value; a bad tag (`!!python/...`, `!!int abc`) is a problem at its line."""
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        what = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
        line = node.start_mark.line + 1
        problems.append(Problem(str(path), line, format_where(loc), f"invalid value: {what}"))
        return None


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
