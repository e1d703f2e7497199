"""Refuse, before compiling, every JSON Schema reference that could leave the document.

A schema may only point inside itself: `$ref` / `$dynamicRef` must be a fragment (`#`, `#/json/pointer`
that resolves, or `#name` of an `$anchor` / `$dynamicAnchor` it declares); `$schema` must name a
metaschema jsonschema ships; `$id` is allowed at the root only (a nested `$id` would re-base the
`#...` references under it, which our compiled check and coercion resolve against the root). The
explicit registry in `schema_cache` refuses any retrieval as well; this check is what turns a bad
reference into a clear 400 instead of an unresolvable reference at validation time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from jsonschema_specifications import REGISTRY as _METASCHEMAS

__all__ = ["external_refs", "ref_problem", "resolve_pointer"]

_KNOWN_DIALECTS = frozenset(uri for base in _METASCHEMAS for uri in (base, base + "#"))
_DATA = frozenset(("const", "enum", "default", "examples"))  # values here are data, not schemas
_SCHEMA_MAPS = frozenset(("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"))
_REF_KEYS = ("$ref", "$dynamicRef")
_ANCHOR_KEYS = ("$anchor", "$dynamicAnchor")


def _where(path: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(p) for p in path)


def resolve_pointer(root: Any, ref: str) -> tuple[bool, Any]:
    """(found, node) for a `#/json/pointer` fragment, read against the root document."""
    node = root
    for raw in ref[2:].split("/") if ref.startswith("#/") else []:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


class _Walk:
    def __init__(self, root: Any, base_uri: str = "", documents: frozenset[str] = frozenset()) -> None:
        self.root = root
        self.base_uri = base_uri
        self.documents = documents  # other local documents (a policy's schema files), by URI
        self.refs: list[tuple[str, tuple[Any, ...]]] = []
        self.anchors: set[str] = set()
        self.seen: set[int] = set()

    def schema(self, node: Any, path: tuple[Any, ...]) -> str | None:
        """Walk `node` as a schema (iteratively: depth is the caller's to bound); the first problem."""
        stack = [(node, path)]
        while stack:
            current, where = stack.pop()
            if isinstance(current, list):
                stack.extend((item, (*where, i)) for i, item in enumerate(current))
                continue
            if not isinstance(current, Mapping) or id(current) in self.seen:
                continue
            self.seen.add(id(current))
            problem = self.keywords(current, where)
            if problem is not None:
                return problem
            for key, value in current.items():
                if key in _DATA:
                    continue
                if key in _SCHEMA_MAPS and isinstance(value, Mapping):
                    stack.extend((sub, (*where, key, name)) for name, sub in value.items())
                else:
                    stack.append((value, (*where, key)))
        return None

    def keywords(self, node: Mapping[str, Any], where: tuple[Any, ...]) -> str | None:
        for key in _REF_KEYS:
            ref = node.get(key)
            if isinstance(ref, str):
                if not ref.startswith("#") and not self.local_document(ref):
                    return (
                        f"{key} {ref!r} at '{_where(where)}' points outside the schema; only references"
                        " inside it ('#/$defs/...') are allowed, and guardproxy never fetches a schema"
                    )
                if ref.startswith("#"):
                    self.refs.append((ref, where))
        for key in _ANCHOR_KEYS:
            if isinstance(node.get(key), str):
                self.anchors.add(node[key])
        dialect = node.get("$schema")
        if dialect is not None and dialect not in _KNOWN_DIALECTS:
            return f"$schema {dialect!r} at '{_where(where)}' is not a known JSON Schema metaschema"
        if "$id" in node and (where or not isinstance(node["$id"], str)):
            return f"$id at '{_where(where)}' is only allowed as a string at the root of the schema"
        return None

    def local_document(self, ref: str) -> bool:
        """True when `ref` names one of the pre-loaded local documents (never anything to fetch)."""
        return bool(self.base_uri) and urldefrag(urljoin(self.base_uri, ref)).url in self.documents

    def resolve_refs(self) -> str | None:
        """Every `#...` reference resolves; pointer targets are walked too (they may sit in data)."""
        done = 0
        while done < len(self.refs):
            ref, where = self.refs[done]
            done += 1
            if ref in ("", "#") or ref.startswith("#/"):
                found, target = resolve_pointer(self.root, ref)
                if not found:
                    return f"$ref {ref!r} at '{_where(where)}' does not resolve inside the schema"
                problem = self.schema(target, (ref,))
                if problem is not None:
                    return problem
            elif unquote(ref[1:]) not in self.anchors:
                return f"$ref {ref!r} at '{_where(where)}' names no $anchor of the schema"
        return None


def ref_problem(schema: Any, base_uri: str = "", documents: frozenset[str] = frozenset()) -> str | None:
    """Why `schema` refers (or could refer) outside itself, or None when every reference is local.

    `documents`: URIs of pre-loaded local files (a policy's) that references resolved against
    `base_uri` may name as well.
    """
    walk = _Walk(schema, base_uri, documents)
    return walk.schema(schema, ()) or walk.resolve_refs()


def external_refs(schema: Any) -> list[str]:
    """Every `$ref` / `$dynamicRef` of `schema` that is not a fragment (to load local files from)."""
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, Mapping):
            found.extend(r for k in _REF_KEYS if isinstance(r := node.get(k), str) and not r.startswith("#"))
            stack.extend(v for k, v in node.items() if k not in _DATA)
    return found
