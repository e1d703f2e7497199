"""instructor (own venv: its pins), every mode, on a model whose first answer is broken."""

from __future__ import annotations

from typing import Any

import pytest

from tests.compat.conftest import COMPAT, INSTRUCTOR_PYTHON, Proxy, run_json

pytestmark = pytest.mark.compat


@pytest.mark.parametrize(
    ("mode", "stem"),
    [
        ("TOOLS", "schema"),
        ("TOOLS", "fence"),
        ("TOOLS", "trailing"),
        ("JSON_SCHEMA", "fence"),
        ("JSON_SCHEMA", "trailing"),
        ("JSON", "person-broken"),
        ("MD_JSON", "person-md"),
    ],
)
def test_instructor(proxy: Proxy, model: Any, mode: str, stem: str) -> None:
    script = str(COMPAT / "clients" / "instructor_cases.py")
    result = run_json([INSTRUCTOR_PYTHON, script, proxy.base_url, model(stem), mode])
    person = result["person"]
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    if stem.startswith("person"):
        assert person == {"name": "Ada", "age": 36}
