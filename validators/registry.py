"""The validator registry: type names to factories, built-ins and plugins registered the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from validators._options import did_you_mean
from validators._tokens import TokenCounter, offline_token_counter
from validators.base import ON_FAIL_MODES, BuildContext, RequestContext, Validator, ValidatorConfigError
from validators.schema_cache import SchemaCache

__all__ = ["ENTRY_POINT_GROUP", "Factory", "Registry", "default_registry", "implicit_validators"]

ENTRY_POINT_GROUP = "guardproxy.validators"
Factory = Callable[[Mapping[str, Any], BuildContext], Validator]


class Registry:
    """Validator factories by `type`; `create` turns one YAML mapping into a ready validator."""

    def __init__(
        self,
        *,
        schema_cache: SchemaCache | None = None,
        token_counter: Callable[[str], TokenCounter | None] = offline_token_counter,
    ) -> None:
        self.schema_cache = schema_cache if schema_cache is not None else SchemaCache()
        self._factories: dict[str, Factory] = {}
        self._load_counter = token_counter
        self._counters: dict[str, TokenCounter | None] = {}
        self._lock = threading.Lock()

    def register(self, type_name: str, factory: Factory) -> None:
        """Add a type: `factory(spec, context)` returns a Validator or raises ValidatorConfigError."""
        if type_name in self._factories:
            raise ValueError(f"validator type '{type_name}' is already registered")
        self._factories[type_name] = factory

    def names(self) -> list[str]:
        """The registered type names, sorted."""
        return sorted(self._factories)

    def create(self, spec: Mapping[str, Any], *, base_dir: Path | None = None) -> Validator:
        """Build the validator `spec` describes; raise ValidatorConfigError naming the bad key."""
        if not isinstance(spec, Mapping):
            raise ValidatorConfigError("a validator must be a mapping with a 'type' key", key=None)
        type_name = spec.get("type")
        if not isinstance(type_name, str) or not type_name:
            raise ValidatorConfigError(
                f"'type' must name a validator ({', '.join(self.names())})", key="type"
            )
        factory = self._factories.get(type_name)
        if factory is None:
            hint = did_you_mean(type_name, self._factories)
            raise ValidatorConfigError(f"unknown validator '{type_name}'{hint}", key="type")
        context = BuildContext(self.schema_cache, base_dir, self._counter)
        try:
            validator = factory(spec, context)
        except ValidatorConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's own error becomes a config error at load
            raise ValidatorConfigError(
                f"validator '{type_name}' could not be built: {exc}", key=None
            ) from exc
        _check_shape(validator, type_name)
        return validator

    def _counter(self, encoding: str) -> TokenCounter | None:
        with self._lock:
            if encoding not in self._counters:
                self._counters[encoding] = self._load_counter(encoding)
            return self._counters[encoding]


def _check_shape(validator: Any, type_name: str) -> None:
    if not callable(getattr(validator, "check", None)) or not isinstance(
        getattr(validator, "type", None), str
    ):
        raise ValidatorConfigError(f"validator '{type_name}' built an object without 'type' and 'check'")
    if getattr(validator, "on_fail", None) not in (None, *ON_FAIL_MODES):
        raise ValidatorConfigError(f"validator '{type_name}' has an invalid on_fail", key="on_fail")


class _EntryPointFactory:
    """Loads a plugin's factory on first use, so a broken plugin only fails the policies using it."""

    def __init__(self, entry_point: metadata.EntryPoint) -> None:
        self._entry_point = entry_point
        self._factory: Factory | None = None

    def __call__(self, spec: Mapping[str, Any], context: BuildContext) -> Validator:
        if self._factory is None:
            try:
                self._factory = self._entry_point.load()
            except Exception as exc:  # noqa: BLE001 - any import failure of a plugin is a config error
                raise ValidatorConfigError(
                    f"cannot load validator plugin '{self._entry_point.value}': {exc}", key="type"
                ) from exc
        return self._factory(spec, context)


def default_registry(*, plugins: bool = True, schema_cache: SchemaCache | None = None) -> Registry:
    """A registry with the built-ins and, unless `plugins=False`, the `guardproxy.validators` entry points."""
    from validators import builtin

    registry = Registry(schema_cache=schema_cache)
    builtin.register(registry)
    if plugins:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in registry.names():
                raise ValidatorConfigError(
                    f"plugin '{ep.value}' registers validator type '{ep.name}', which already exists",
                    key="type",
                )
            registry.register(ep.name, _EntryPointFactory(ep))
    return registry


def implicit_validators(
    registry: Registry, ctx: RequestContext, existing: Sequence[Validator] = ()
) -> list[Validator]:
    """Validators the request brings in, unless `existing` has them: `json` / `json_schema` for a JSON
    `response_format`, `tool_calls` for a forced tool call (`tool_choice` required or naming a function).
    """
    out: list[Validator] = []
    if ctx.wants_json():
        if not any(v.type == "json" for v in existing):
            out.append(registry.create({"type": "json"}))
        if ctx.response_schema() is not None and not any(
            getattr(v, "uses_response_format", False) for v in existing
        ):
            out.append(registry.create({"type": "json_schema", "schema": "response_format"}))
    if ctx.forces_tool_call() and not any(v.type == "tool_calls" for v in existing):
        out.append(registry.create({"type": "tool_calls"}))
    return out
