"""Repository hygiene: every third-party import is declared in pyproject.toml, every `__all__` is sorted."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = {"proxy", "validators", "bench", "tests"}
# Client SDKs of the compatibility suite live in their own venvs (tests/compat/requirements*.txt).
SEPARATE_VENVS = {REPO / "tests" / "compat"}


def _requirement_name(spec: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", spec)
    assert name is not None, spec
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {_requirement_name(s) for s in project["dependencies"]}
    dev = {_requirement_name(s) for s in project["optional-dependencies"]["dev"]}
    return runtime, dev


def _python_files(*roots: str) -> Iterator[Path]:
    for root in roots:
        for path in (REPO / root).rglob("*.py"):
            if not any(folder in path.parents for folder in SEPARATE_VENVS):
                yield path


def _imported(path: Path) -> set[str]:
    """Top-level names of the absolute imports in `path` that are neither stdlib, ours, nor its siblings."""
    siblings = {p.stem for p in path.parent.glob("*.py")}
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - OURS - siblings - {"__future__"}


def _undeclared(roots: tuple[str, ...], declared: set[str]) -> dict[str, str]:
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for path in _python_files(*roots):
        for name in _imported(path):
            dists = {_requirement_name(d) for d in distributions.get(name, [name])}
            if not dists & declared:
                missing[name] = str(path.relative_to(REPO))
    return missing


@pytest.mark.parametrize(
    ("roots", "extras"),
    [(("proxy", "validators"), False), (("bench", "tests"), True)],
    ids=["runtime", "bench-and-tests"],
)
def test_every_third_party_import_is_declared(roots: tuple[str, ...], extras: bool) -> None:
    runtime, dev = _declared()
    assert _undeclared(roots, runtime | dev if extras else runtime) == {}


def _all_of(path: Path) -> list[str] | None:
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "__all__":
            assert node.value is not None
            return list(ast.literal_eval(node.value))
    return None


def test_every_all_in_proxy_and_validators_is_sorted() -> None:
    unsorted = []
    for path in _python_files("proxy", "validators"):
        names = _all_of(path)
        if names is not None and names != sorted(names):
            unsorted.append(str(path.relative_to(REPO)))
    assert unsorted == []
