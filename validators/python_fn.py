"""The `python` validator: a custom check given as `function: module:callable`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from validators._options import Options, did_you_mean
from validators.base import BuildContext, Output, RequestContext, ValidatorConfigError, Violation

__all__ = ["PythonValidator", "load_callable", "python_factory"]

_MAX_MESSAGE = 500


def load_callable(target: str) -> Callable[..., Any]:
    """Import `module:attr` (attr may be dotted); raise ValidatorConfigError saying what is missing."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValidatorConfigError(
            f"function must look like 'package.module:callable', not {target!r}", key="function"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidatorConfigError(f"cannot import module '{module_name}': {exc}", key="function") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            hint = did_you_mean(part, [n for n in dir(obj) if not n.startswith("_")])
            raise ValidatorConfigError(f"'{module_name}' has no attribute '{attr}'{hint}", key="function")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValidatorConfigError(f"'{target}' is not callable", key="function")
    return obj  # type: ignore[no-any-return]


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


class PythonValidator:
    """Calls `fn(output, ctx, **params)`; None/True/[] pass, False/str/Violation/list of them fail."""

    type = "python"

    def __init__(
        self, function: str, fn: Callable[..., Any], params: Mapping[str, Any], on_fail: str | None = None
    ) -> None:
        self.function = function
        self.on_fail = on_fail
        self._fn = fn
        self._params = dict(params)

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        """The function's verdict as violations; an exception in it is a violation too (fail closed)."""
        try:
            result = self._fn(output, ctx, **self._params)
        except Exception as exc:  # noqa: BLE001 - a broken custom check must not pass outputs through
            return [
                Violation(self.type, _cut(f"the check {self.function} raised {type(exc).__name__}: {exc}"))
            ]
        if result is None or result is True:
            return []
        if result is False:
            return [Violation(self.type, f"the output failed the check {self.function}")]
        items = [result] if isinstance(result, (str, Violation, Mapping)) else result
        if not isinstance(items, Iterable):
            return [
                Violation(
                    self.type, f"the check {self.function} returned {type(result).__name__}, not a verdict"
                )
            ]
        return [self._violation(item) for item in items]

    def _violation(self, item: Any) -> Violation:
        if isinstance(item, Violation):
            return item
        if isinstance(item, Mapping):
            path = item.get("path")
            return Violation(
                self.type, _cut(str(item.get("message", ""))), path if isinstance(path, str) else None
            )
        return Violation(self.type, _cut(str(item)))


def python_factory(spec: Mapping[str, Any], context: BuildContext) -> PythonValidator:
    """Build `type: python` (`function: module:callable`, optional `params` passed as keywords)."""
    opts = Options("python", spec, ("function", "params"))
    target = opts.string("function")
    if not target:
        raise ValidatorConfigError("python needs 'function: package.module:callable'", key="function")
    params = opts.raw("params", {})
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ValidatorConfigError("'params' must be a mapping of keyword arguments", key="params")
    return PythonValidator(target, load_callable(target), params, opts.on_fail(("reject", "flag")))
