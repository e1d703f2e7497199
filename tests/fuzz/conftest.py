"""`make fuzz` runs this folder with `--fuzz-long` (2 minutes of schemathesis); the suite runs 15 s."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help="run schemathesis against /openapi.json for 2 minutes instead of about 15 seconds",
    )
