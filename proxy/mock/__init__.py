"""The mock provider: scripted model behaviours for tests, benchmarks and offline use."""

from proxy.mock.behaviours import MockReply, embed, plan_reply
from proxy.mock.options import BEHAVIOURS, MockConfigError, validate_options
from proxy.mock.schema_gen import SchemaGenError, generate

__all__ = [
    "BEHAVIOURS",
    "MockConfigError",
    "MockReply",
    "SchemaGenError",
    "embed",
    "generate",
    "plan_reply",
    "validate_options",
]
