"""The `json` and `json_schema` validators."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urldefrag, urljoin, urlparse
from urllib.request import url2pathname

from validators._messages import schema_violations
from validators._options import Options
from validators._refs import external_refs
from validators.base import BuildContext, Output, RequestContext, ValidatorConfigError, Violation
from validators.schema_cache import CompiledSchema, SchemaCache, SchemaProblem, compile_documents

__all__ = ["JsonSchemaValidator", "JsonValidator", "json_factory", "json_schema_factory"]

_NO_REDACT = ("reject", "flag")
_MAX_FILES = 32  # schema files one policy schema may pull in through references
RESPONSE_FORMAT = "response_format"


class JsonValidator:
    """The output text must parse as strict JSON (an answer made only of tool calls passes)."""

    type = "json"

    def __init__(self, on_fail: str | None = None) -> None:
        self.on_fail = on_fail

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        """One violation naming the parser's complaint, or none."""
        if output.text is None and output.tool_calls:
            return []
        reason = output.json_error()
        if reason is None:
            return []
        return [Violation(self.type, f"the output is not valid JSON: {reason}", None)]


class JsonSchemaValidator:
    """The output text must be JSON matching a schema: the request's `response_format`, inline, or a file."""

    type = "json_schema"

    def __init__(
        self,
        schema: Mapping[str, Any] | bool | None,
        cache: SchemaCache,
        on_fail: str | None = None,
        compiled: CompiledSchema | None = None,
    ) -> None:
        self.schema = schema
        self.uses_response_format = schema is None
        self.on_fail = on_fail
        self.schema_cache = cache
        if compiled is None and schema is not None:  # inline: compiled at load
            compiled = cache.get(schema)
        self._compiled = compiled

    def schema_for(self, ctx: RequestContext) -> Mapping[str, Any] | bool | None:
        """The schema that applies to this request (None: nothing to check)."""
        return ctx.response_schema() if self.schema is None else self.schema

    def compiled_for(self, ctx: RequestContext) -> CompiledSchema | None:
        """The compiled schema for this request; raise SchemaProblem for an unusable request schema."""
        if self._compiled is not None:
            return self._compiled
        if self.schema is not None:
            return None
        if ctx.response_compiled is not None:
            return cast(CompiledSchema, ctx.response_compiled)
        schema = ctx.response_schema()
        return None if schema is None else self.schema_cache.get(schema)

    def check(self, output: Output, ctx: RequestContext) -> list[Violation]:
        """Violations with JSON Pointer paths into the output document."""
        schema = self.schema_for(ctx)
        if schema is None or (output.text is None and output.tool_calls):
            return []
        reason = output.json_error()
        if reason is not None:
            return [
                Violation(
                    self.type,
                    f"the output cannot be checked against the schema because it is not valid JSON: {reason}",
                    None,
                )
            ]
        try:  # what compiled_for(ctx) returns, without reading the request's schema twice
            compiled = self._compiled
            if compiled is None:
                compiled = ctx.response_compiled if self.schema is None else None
                compiled = compiled if compiled is not None else self.schema_cache.get(schema)
        except SchemaProblem as exc:
            return [Violation(self.type, f"the request's response_format schema cannot be used: {exc}", None)]
        value = output.json_value()
        if compiled is None or compiled.is_valid(value):
            return []
        return schema_violations(self.type, compiled.errors(value))


def json_factory(spec: Mapping[str, Any], context: BuildContext) -> JsonValidator:
    """Build `type: json` from its YAML options."""
    opts = Options("json", spec, ())
    return JsonValidator(on_fail=opts.on_fail(_NO_REDACT))


def json_schema_factory(spec: Mapping[str, Any], context: BuildContext) -> JsonSchemaValidator:
    """Build `type: json_schema`; `schema` is `response_format` (default), a mapping, or a .json path."""
    opts = Options("json_schema", spec, ("schema",))
    on_fail = opts.on_fail(_NO_REDACT)
    raw = opts.raw("schema", RESPONSE_FORMAT)
    schema: Mapping[str, Any] | bool | None
    documents: dict[str, Any] = {}
    if raw == RESPONSE_FORMAT:
        schema = None
    elif isinstance(raw, (Mapping, bool)):
        schema = raw
    elif isinstance(raw, str):
        documents = load_schema_files(raw, context.base_dir)
        schema = next(iter(documents.values()))
    else:
        raise ValidatorConfigError(
            "'schema' must be 'response_format', an inline schema mapping, or a path to a .json file",
            key="schema",
        )
    compiled = None
    if schema is not None:
        try:  # a file referring to other local files is compiled with them, outside the shared cache
            compiled = (
                compile_documents(documents) if len(documents) > 1 else context.schema_cache.get(schema)
            )
        except SchemaProblem as exc:
            raise ValidatorConfigError(f"schema: {exc}", key="schema") from None
    return JsonSchemaValidator(schema, context.schema_cache, on_fail, compiled)


def load_schema_files(name: str, base_dir: Path | None) -> dict[str, Any]:
    """The schema file `name` and the local files it refers to, by `file:` URI (the named one first).

    Only files under the named file's folder are loaded (at most _MAX_FILES); any other reference
    is left for the reference check to refuse. Nothing is fetched.
    """
    path = Path(name)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    path = path.resolve()
    folder = path.parent
    documents: dict[str, Any] = {}
    todo = [path]
    while todo:
        current = todo.pop(0)
        uri = current.as_uri()
        if uri in documents:
            continue
        if len(documents) >= _MAX_FILES:
            raise ValidatorConfigError(f"schema files refer to more than {_MAX_FILES} files", key="schema")
        documents[uri] = _read_schema(current)
        for ref in external_refs(documents[uri]):
            target = urldefrag(urljoin(uri, ref)).url
            if target.startswith("file:"):
                local = Path(url2pathname(urlparse(target).path)).resolve()
                if local.is_relative_to(folder) and local.suffix == ".json" and local.is_file():
                    todo.append(local)
    root = documents[path.as_uri()]
    if len(documents) > 1 and isinstance(root, Mapping) and "$id" in root:
        raise ValidatorConfigError("a schema file that refers to other files must not set $id", key="schema")
    return documents


def _read_schema(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidatorConfigError(
            f"cannot read schema file '{path}': {exc.strerror or exc}", key="schema"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidatorConfigError(
            f"schema file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            key="schema",
        ) from None
