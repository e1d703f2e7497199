"""The texts a content check must see: the answer text and every string inside tool-call arguments."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from validators._messages import pointer
from validators.base import Output, strict_json


def call_path(index: int) -> str:
    """JSON Pointer of a tool call's arguments within the answer."""
    return f"/tool_calls/{index}/function/arguments"


def arguments_of(call: Mapping[str, Any]) -> Any:
    """The raw `function.arguments` of a tool call (normally a JSON string)."""
    fn = call.get("function")
    return fn.get("arguments") if isinstance(fn, Mapping) else None


def _strings(value: Any, path: list[Any]) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield pointer(path), value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield pointer([*path, key]), key
            yield from _strings(item, [*path, key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, [*path, i])


def targets(output: Output) -> Iterator[tuple[str | None, str]]:
    """(path, text) pairs: the answer text (path None), then each string in each call's arguments."""
    if output.text:
        yield None, output.text
    for i, call in enumerate(output.tool_calls):
        args = arguments_of(call)
        if not isinstance(args, str):
            continue
        try:
            value = strict_json(args)
        except ValueError:
            yield call_path(i), args
            continue
        for ptr, text in _strings(value, []):
            yield call_path(i) + ptr, text


def _map(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {fn(k): _map(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map(v, fn) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # a card number sent as a JSON number is still a card number: the redacted form is a string
        text = str(value)
        mapped = fn(text)
        return value if mapped == text else mapped
    return value


def map_json_text(raw: str, fn: Callable[[str], str]) -> str:
    """JSON text with `fn` applied to every string in it (keys too); unchanged text when nothing changed.

    Raise ValueError when `raw` is not JSON.
    """
    parsed = strict_json(raw)
    mapped = _map(parsed, fn)
    return raw if mapped == parsed else json.dumps(mapped, ensure_ascii=False)


def map_strings(output: Output, fn: Callable[[str], str]) -> Output:
    """The output with `fn` applied to its text and to every string inside tool-call arguments."""
    text = fn(output.text) if output.text else output.text
    calls = []
    for call in output.tool_calls:
        args = arguments_of(call)
        if isinstance(args, str):
            try:
                new_args = map_json_text(args, fn)
            except ValueError:
                new_args = fn(args)
            if new_args != args:
                call = {**call, "function": {**call["function"], "arguments": new_args}}
        calls.append(call)
    return replace(output, text=text, tool_calls=tuple(calls))
