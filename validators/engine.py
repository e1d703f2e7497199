"""Running a policy's validators over an output."""

from __future__ import annotations

from collections.abc import Sequence

from validators.base import Output, RequestContext, Validator, Violation
from validators.budget import ValidationBudgetExceeded

__all__ = ["check"]


def check(validators: Sequence[Validator], output: Output, ctx: RequestContext) -> list[Violation]:
    """Every violation from every validator, in order; a validator that crashes counts as a violation."""
    found: list[Violation] = []
    for validator in validators:
        try:
            found.extend(validator.check(output, ctx))
        except ValidationBudgetExceeded:
            raise  # the whole request stops: a partial verdict must not pass or be blamed on the output
        except RecursionError:
            found.append(Violation(validator.type, "the output is nested too deeply to check"))
        except Exception as exc:  # noqa: BLE001 - fail closed: an unchecked output must not pass
            found.append(
                Violation(
                    validator.type,
                    f"the validator failed ({type(exc).__name__}), so the output could not be checked",
                )
            )
    return found
