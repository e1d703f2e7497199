"""Helpers for the corpus builder: a JSON-ish serializer with model-style defects, and path utilities."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_SMART = ("\u201c", "\u201d")


def _string(s: str, quote: str, raw_newlines: bool, escape_inner_quotes: bool) -> str:
    if quote == '"':
        body = json.dumps(s, ensure_ascii=False)[1:-1]
        if not escape_inner_quotes:
            body = body.replace('\\"', '"')
        if raw_newlines:
            body = body.replace("\\n", "\n")
        return f'"{body}"'
    if quote == "'":
        body = json.dumps(s, ensure_ascii=False)[1:-1].replace('\\"', '"').replace("'", "\\'")
        return f"'{body}'"
    body = json.dumps(s, ensure_ascii=False)[1:-1]
    return f"{_SMART[0]}{body}{_SMART[1]}"


def emit(
    value: Any,
    *,
    indent: int | None = 2,
    quote: str = '"',
    quote_keys: bool = True,
    trailing_commas: bool = False,
    comments: bool = False,
    raw_newlines: bool = False,
    escape_inner_quotes: bool = True,
) -> str:
    """Serialize like a model might: other quotes, trailing commas, comments, raw newlines, bare keys."""

    def s(text: str) -> str:
        return _string(text, quote, raw_newlines, escape_inner_quotes)

    def key(k: str) -> str:
        return k if not quote_keys and k.isidentifier() else s(k)

    def go(v: Any, depth: int) -> str:
        pad = "" if indent is None else "\n" + " " * (indent * (depth + 1))
        end = "" if indent is None else "\n" + " " * (indent * depth)
        sep = ", " if indent is None else ","
        if isinstance(v, dict):
            if not v:
                return "{}"
            items = [f"{pad}{key(k)}: {go(x, depth + 1)}" for k, x in v.items()]
            if comments and depth == 0:
                items[0] = f"{pad}// extracted from the user's message{items[0]}"
            body = sep.join(items) + ("," if trailing_commas else "")
            if comments and depth == 0:
                body += f"{pad}/* end of record */"
            return "{" + body + end + "}"
        if isinstance(v, list):
            if not v:
                return "[]"
            items = [f"{pad}{go(x, depth + 1)}" for x in v]
            if comments and depth == 0:
                items[0] = f"{pad}// one entry per product{items[0]}"
            body = sep.join(items) + ("," if trailing_commas else "")
            return "[" + body + end + "]"
        if isinstance(v, str):
            return s(v)
        return json.dumps(v)

    return go(value, 0)


def paths_of(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) in document order, containers before their children."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, (*path, i))


def get_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def set_at(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    get_at(doc, path[:-1])[path[-1]] = value


def delete_at(doc: Any, path: tuple[Any, ...]) -> None:
    del get_at(doc, path[:-1])[path[-1]]


def schema_at(schema: Any, path: tuple[Any, ...], root: Any = None) -> Any:
    """The subschema for a document path (follows local $ref, properties, items)."""
    root = schema if root is None else root
    while isinstance(schema, dict) and "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    if not path:
        return schema
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        return schema_at(schema.get("items", {}), rest, root)
    return schema_at(schema.get("properties", {}).get(head, {}), rest, root)
