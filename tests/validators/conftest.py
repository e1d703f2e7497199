"""Fixtures for the validators library tests (plain pytest, no server)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the library must import without installing the project
    sys.path.insert(0, str(ROOT))

from validators import Registry, RequestContext, default_registry  # noqa: E402


@pytest.fixture
def registry() -> Registry:
    """A fresh registry with the built-ins and no third-party plugins."""
    return default_registry(plugins=False)


@pytest.fixture
def ctx() -> RequestContext:
    """A request context with no response_format and no tools."""
    return RequestContext()
