"""The built-in validators, registered through the same `register` call a plugin uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from validators.json_schema import json_factory, json_schema_factory
from validators.pii import pii_factory
from validators.python_fn import python_factory
from validators.text import length_factory, phrases_factory, regex_factory
from validators.tools import tool_calls_factory

if TYPE_CHECKING:
    from validators.registry import Registry


def register(registry: Registry) -> None:
    """Add every built-in validator type to `registry`."""
    registry.register("json", json_factory)
    registry.register("json_schema", json_schema_factory)
    registry.register("regex", regex_factory)
    registry.register("length", length_factory)
    registry.register("pii", pii_factory)
    registry.register("phrases", phrases_factory)
    registry.register("tool_calls", tool_calls_factory)
    registry.register("python", python_factory)
