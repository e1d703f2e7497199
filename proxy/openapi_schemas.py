"""The component schemas of guardproxy's OpenAPI document: requests as `proxy.wire` accepts them."""

from __future__ import annotations

from typing import Any

from .settings import LimitSettings
from .wire import MAX_EMBEDDING_DIMENSIONS, MAX_TOKEN_ID

__all__ = ["component_schemas"]

_PASSTHROUGH = (
    "audio function_call functions logit_bias logprobs modalities parallel_tool_calls prediction "
    "prompt_cache_key reasoning_effort safety_identifier service_tier store tool_choice verbosity "
    "web_search_options"
).split()


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _int(low: int, high: int) -> dict[str, Any]:
    return _nullable({"type": "integer", "minimum": low, "maximum": high})


def _num(low: float, high: float) -> dict[str, Any]:
    return _nullable({"type": "number", "minimum": low, "maximum": high})


def _parts() -> dict[str, dict[str, Any]]:
    """Content-part schemas by type, as `proxy.content_parts` accepts them."""

    def part(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["type", kind],
            "properties": {"type": {"const": kind}, kind: payload},
        }

    def strings(*names: str) -> dict[str, Any]:
        return {name: {"type": "string"} for name in names}

    return {
        "text": part("text", {"type": "string"}),
        "refusal": part("refusal", {"type": "string"}),
        "image_url": part(
            "image_url", {"type": "object", "required": ["url"], "properties": strings("url", "detail")}
        ),
        "input_audio": part(
            "input_audio",
            {"type": "object", "required": ["data", "format"], "properties": strings("data", "format")},
        ),
        "file": part(
            "file",
            {
                "type": "object",
                "properties": strings("file_data", "file_id", "filename"),
                "anyOf": [{"required": [name]} for name in ("file_data", "file_id", "filename")],
            },
        ),
    }


def _message() -> dict[str, Any]:
    """One chat message: text roles need `content`; assistant, tool and function may omit it. Each role
    has its own content-part types (user: text, image, audio, file; assistant: text, refusal; else text)."""
    by_type = _parts()

    def parts(*kinds: str) -> dict[str, Any]:
        return {"type": "array", "items": {"anyOf": [by_type[k] for k in kinds]}}

    tool_call = {
        "type": "object",
        "required": ["function"],
        "properties": {"id": {}, "type": {}, "function": {"type": "object"}},
    }
    common = {"name": {"type": "string"}, "tool_calls": {"type": "array", "items": tool_call}}

    def branch(roles: list[str], content: list[dict[str, Any]], optional: bool) -> dict[str, Any]:
        properties = {"role": {"enum": roles}, "content": {"anyOf": content}, **common}
        if optional:
            properties["tool_call_id"] = {}
        required = ["role"] if optional else ["role", "content"]
        return {"type": "object", "required": required, "properties": properties}

    text, null = {"type": "string"}, {"type": "null"}
    return {
        "oneOf": [
            branch(["system", "developer"], [text, parts("text")], False),
            branch(["user"], [text, parts("text", "image_url", "input_audio", "file")], False),
            branch(["assistant"], [text, parts("text", "refusal"), null], True),
            branch(["tool", "function"], [text, parts("text"), null], True),
        ]
    }


def _chat(limits: LimitSettings) -> dict[str, Any]:
    """The Chat Completions request, with the limits of `limits`."""
    message = _message()
    schema_object = {
        "type": "object",
        "description": f"A JSON Schema, at most {limits.max_schema_depth} deep.",
    }
    response_format = {
        "oneOf": [
            {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["text", "json_object"]}},
            },
            {
                "type": "object",
                "required": ["type", "json_schema"],
                "properties": {
                    "type": {"const": "json_schema"},
                    "json_schema": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "description": {},
                            "schema": schema_object,
                            "strict": {},
                        },
                    },
                },
            },
        ]
    }
    tool = {
        "type": "object",
        "required": ["function"],
        "properties": {
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "description": {}, "parameters": schema_object},
            },
        },
    }
    chat = {
        "type": "object",
        "description": "The OpenAI Chat Completions request. Fields outside it are dropped, never forwarded.",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "pattern": "\\S", "description": "A configured model alias."},
            "messages": {"type": "array", "minItems": 1, "maxItems": limits.max_messages, "items": message},
            "stream": {"type": "boolean"},
            "stream_options": _nullable({"type": "object", "properties": {"include_usage": {}}}),
            "temperature": _num(0, 2),
            "top_p": _num(0, 1),
            "presence_penalty": _num(-2, 2),
            "frequency_penalty": _num(-2, 2),
            "n": _int(1, limits.max_n),
            "max_tokens": _int(1, limits.max_tokens),
            "max_completion_tokens": _int(1, limits.max_tokens),
            "seed": _int(-(2**63), 2**63 - 1),
            "top_logprobs": _int(0, 20),
            "response_format": response_format,
            "tools": {"type": "array", "maxItems": limits.max_tools, "items": tool},
            "stop": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "maxItems": limits.max_stop, "items": {"type": "string"}},
                ]
            },
            "metadata": {"type": "object", "description": "String values only; others are dropped."},
            "user": {"type": "string"},
            **{name: {"description": "Forwarded as given."} for name in _PASSTHROUGH},
        },
    }
    return chat


def _embeddings() -> dict[str, Any]:
    token = {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID}
    embeddings = {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "pattern": "\\S"},
            "input": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "minItems": 1, "maxItems": 2048, "items": {"type": "string"}},
                    {"type": "array", "minItems": 1, "items": token},
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 2048,
                        "items": {"type": "array", "minItems": 1, "items": token},
                    },
                ]
            },
            "dimensions": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_EMBEDDING_DIMENSIONS},
            "encoding_format": {"enum": ["float", "base64", None]},
            "user": {},
        },
    }
    return embeddings


def _error() -> dict[str, Any]:
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                    "violations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["validator", "message", "path"],
                            "properties": {
                                "validator": {"type": "string"},
                                "message": {"type": "string"},
                                "path": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
            }
        },
    }
    return error


def component_schemas(limits: LimitSettings) -> dict[str, Any]:
    """Every schema the document refers to."""
    completion = {
        "type": "object",
        "required": ["id", "object", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "message"],
                    "properties": {
                        "index": {"type": "integer"},
                        "message": {"type": "object", "properties": {"role": {"const": "assistant"}}},
                        "finish_reason": {"type": ["string", "null"]},
                    },
                },
            },
            "usage": _nullable({"type": "object"}),
        },
    }
    embedding_list = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array"}, "model": {"type": "string"}},
    }
    model = {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
        },
    }
    models = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": model}},
    }
    return {
        "ChatCompletionRequest": _chat(limits),
        "ChatCompletion": completion,
        "EmbeddingRequest": _embeddings(),
        "EmbeddingList": embedding_list,
        "ModelList": models,
        "Model": model,
        "Error": _error(),
    }
