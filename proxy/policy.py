"""Policy files (policies/NAME.yaml) as frozen objects with their validators built once."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from validators import Registry, RequestContext, Validator, ValidatorConfigError, implicit_validators

from .settings import Frozen, validate_model
from .yamlfile import ConfigError, Problem, load_yaml

__all__ = ["Policy", "PolicySpec", "load_policies", "load_policy"]

Step = Literal["repair", "reask", "fallback", "reject"]
_LADDER_ORDER: tuple[Step, ...] = ("repair", "reask", "fallback", "reject")


class ReaskSpec(Frozen):
    max: int = Field(2, ge=0, le=10)


class BudgetSpec(Frozen):
    max_total_tokens: int | None = Field(None, ge=1)


class PolicyCacheSpec(Frozen):
    enabled: bool = True
    ttl: float | None = Field(None, ge=0)


class PolicySpec(Frozen):
    """The YAML of one policy."""

    name: str
    description: str = ""
    mode: Literal["enforce", "monitor"] = "enforce"
    validators: tuple[dict[str, Any], ...] = ()
    on_fail: tuple[Step, ...] = _LADDER_ORDER
    reask: ReaskSpec = ReaskSpec()
    max_attempts: int = Field(6, ge=1, le=50)
    budget: BudgetSpec = BudgetSpec()
    cache: PolicyCacheSpec = PolicyCacheSpec()
    stream: Literal["buffer", "passthrough"] = "buffer"
    record: Literal["all", "failures", "feedback", "none"] | None = None  # None: config.yaml's `record`

    @field_validator("on_fail")
    @classmethod
    def _ordered(cls, steps: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(steps)) != len(steps):
            raise ValueError("each ladder step may appear once")
        if list(steps) != sorted(steps, key=_LADDER_ORDER.index):
            raise ValueError(f"the ladder steps must keep the order {', '.join(_LADDER_ORDER)}")
        return steps


@dataclass(frozen=True)
class Policy:
    """A loaded policy: its spec, its validators and a hash of its content (part of every cache key)."""

    spec: PolicySpec
    validators: tuple[Validator, ...]
    content_hash: str
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    _implicit: dict[tuple[bool, bool, bool], tuple[Validator, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def validators_for(self, registry: Registry, ctx: RequestContext) -> tuple[Validator, ...]:
        """The policy's validators plus those the request brings in (built once per combination): a JSON
        `response_format` brings json / json_schema, a forced tool call (`tool_choice` required or
        naming a function) brings tool_calls; chat, streams and the Responses API all come here."""
        wants_json, forced = ctx.wants_json(), ctx.forces_tool_call()
        if not wants_json and not forced:
            return self.validators
        shape = (wants_json, ctx.response_schema() is not None, forced)
        found = self._implicit.get(shape)
        if found is None:
            extra = implicit_validators(registry, ctx, self.validators)
            found = self._implicit[shape] = (*extra, *self.validators)
        return found


def load_policy(path: Path, registry: Registry) -> Policy:
    """Load one policy file; ConfigError with FILE:LINE for every problem."""
    located = load_yaml(path, expand_env=False)
    data = located.data
    if not isinstance(data, dict):
        raise ConfigError([located.problem((), "a policy must be a mapping")])
    data.pop("$schema", None)
    spec = validate_model(PolicySpec, data, located)
    problems: list[Problem] = []
    if spec.name != path.stem:
        problems.append(
            located.problem(("name",), f"name '{spec.name}' must equal the file's stem '{path.stem}'")
        )
    built: list[Validator] = []
    for i, raw in enumerate(spec.validators):
        try:
            built.append(registry.create(raw, base_dir=path.parent))
        except ValidatorConfigError as exc:
            key = getattr(exc, "key", None)
            index = getattr(exc, "index", None)
            loc: tuple[str | int, ...] = ("validators", i) + ((key,) if key else ("type",))
            loc += (index,) if index is not None else ()
            problems.append(located.problem(loc, str(exc)))
    if problems:
        raise ConfigError(problems)
    return Policy(spec=spec, validators=tuple(built), content_hash=_content_hash(path, spec), path=path)


def _content_hash(path: Path, spec: PolicySpec) -> str:
    """The policy file's bytes and those of every schema file it points at: editing either invalidates."""
    digest = hashlib.sha256(path.read_bytes())
    for raw in spec.validators:
        schema = raw.get("schema")
        if isinstance(schema, str) and schema != "response_format":
            try:
                digest.update((path.parent / schema).read_bytes())
            except OSError:
                pass  # the validator already refused a missing file at load
    return digest.hexdigest()


def load_policies(folder: Path, registry: Registry, *, required: Sequence[str] = ()) -> Mapping[str, Policy]:
    """Every `*.yaml` policy in `folder` (cases files excluded); ConfigError lists all problems."""
    policies: dict[str, Policy] = {}
    problems: list[Problem] = []
    files = (
        sorted(p for p in folder.glob("*.yaml") if not p.name.endswith(".cases.yaml"))
        if folder.is_dir()
        else []
    )
    for path in files:
        try:
            policy = load_policy(path, registry)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        policies[policy.name] = policy
    for name in required:
        if name not in policies and not any(p.file.endswith(f"/{name}.yaml") for p in problems):
            problems.append(
                Problem(
                    str(folder / f"{name}.yaml"), 1, "(file)", f"policy '{name}' is referenced but missing"
                )
            )
    if problems:
        raise ConfigError(problems)
    return policies
