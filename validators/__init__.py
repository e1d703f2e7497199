"""guardproxy's validation and repair engine, usable on its own: no server, no network, no `proxy` import."""

from validators.base import (
    BuildContext,
    Output,
    RequestContext,
    Span,
    SpanValidator,
    Validator,
    ValidatorConfigError,
    Violation,
)
from validators.budget import Budget, ValidationBudgetExceeded
from validators.engine import check
from validators.reask import build_reask
from validators.redact import redact
from validators.registry import ENTRY_POINT_GROUP, Factory, Registry, default_registry, implicit_validators
from validators.repair import RepairResult, repair
from validators.schema_cache import SchemaCache, SchemaProblem
from validators.stream import GuardStep, StreamGuard

__all__ = [
    "Budget",
    "BuildContext",
    "ENTRY_POINT_GROUP",
    "Factory",
    "GuardStep",
    "Output",
    "Registry",
    "RepairResult",
    "RequestContext",
    "SchemaCache",
    "SchemaProblem",
    "Span",
    "SpanValidator",
    "StreamGuard",
    "ValidationBudgetExceeded",
    "Validator",
    "ValidatorConfigError",
    "Violation",
    "build_reask",
    "check",
    "default_registry",
    "implicit_validators",
    "redact",
    "repair",
]
