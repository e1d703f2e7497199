"""The `/v1/responses` part of `/openapi.json` (merged in by `proxy.openapi`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["paths", "schemas"]

ErrorResponses = Callable[[list[str]], dict[str, Any]]
JsonOk = Callable[[str, str, dict[str, str] | None], dict[str, Any]]

_EVENTS = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "description": "The event type (`response.created`, ...)."},
        "data": {
            "type": "string",
            "description": "The Responses stream event as JSON, with `type` and `sequence_number`: "
            "response.created, response.in_progress, response.output_item.added, "
            "response.content_part.added, response.output_text.delta/.done, "
            "response.function_call_arguments.delta/.done, response.output_item.done, then "
            "response.completed (or response.incomplete); a failure after the stream started is an "
            "`error` event and `response.failed`.",
        },
    },
}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_TEXT_PART = _object(
    ["type", "text"], type={"enum": ["input_text", "output_text", "text"]}, text={"type": "string"}
)
_REFUSAL_PART = _object(["type", "refusal"], type={"const": "refusal"}, refusal={"type": "string"})
_TEXT_PARTS = {"type": "array", "items": {"anyOf": [_TEXT_PART, _REFUSAL_PART]}}
_USER_PARTS = {
    "type": "array",
    "items": {
        "anyOf": [
            _TEXT_PART,
            _REFUSAL_PART,
            _object(["type", "image_url"], type={"const": "input_image"}, image_url={"type": "string"}),
            {
                **_object(
                    [], type={"const": "input_file"}, file_data={"type": "string"}, file_id={"type": "string"}
                ),
                "required": ["type"],
                "anyOf": [{"required": ["file_data"]}, {"required": ["file_id"]}],
            },
        ]
    },
}
_INPUT_ITEM = {  # what proxy.responses.translate serves; anything else is a 400
    "anyOf": [
        _object(
            ["role", "content"],
            type={"const": "message"},
            role={"const": "user"},
            content={"anyOf": [{"type": "string"}, _USER_PARTS]},
        ),
        _object(
            ["role", "content"],
            type={"const": "message"},
            role={"enum": ["assistant", "developer", "system"]},
            content={"anyOf": [{"type": "string"}, _TEXT_PARTS]},
        ),
        _object(
            ["type", "call_id", "name", "arguments"],
            type={"const": "function_call"},
            call_id={"type": "string"},
            name={"type": "string"},
            arguments={"type": "string"},
        ),
        _object(
            ["type", "call_id", "output"],
            type={"const": "function_call_output"},
            call_id={"type": "string", "minLength": 1},
            output={"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}]},
        ),
    ]
}
_FUNCTION_TOOL = _object(["type", "name"], type={"const": "function"}, name={"type": "string"})
_TEXT_FORMATS = [
    _object(["type"], type={"enum": ["text", "json_object"]}),
    _object(
        ["type", "name", "schema"],
        type={"const": "json_schema"},
        name={"type": "string"},
        schema={"type": "object"},
    ),
]


def schemas() -> dict[str, Any]:
    """Component schemas: the request and the objects answered."""
    return {
        "ResponseRequest": {
            "type": "object",
            "required": ["model", "input"],
            "description": "The OpenAI Responses request. Served: input (string or message, function_call "
            "and function_call_output items), instructions, text.format, function tools, tool_choice, "
            "max_output_tokens, temperature, top_p, metadata, user, parallel_tool_calls, stream, store, "
            "previous_response_id. Built-in tools, background, conversation and prompt are refused (400).",
            "properties": {
                "model": {"type": "string", "pattern": "\\S"},
                "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": _INPUT_ITEM}]},
                "instructions": {"type": ["string", "null"]},
                "stream": {"type": ["boolean", "null"]},
                "store": {"type": ["boolean", "null"]},
                "previous_response_id": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "description": "The id of an earlier response stored with `store: true` by the same key;"
                    " 400 `previous_response_not_found` when unknown, expired or deleted.",
                },
                "tools": {"type": ["array", "null"], "items": _FUNCTION_TOOL},
                "tool_choice": {
                    "anyOf": [
                        {"enum": ["auto", "none", "required", None]},
                        {
                            "type": "object",
                            "required": ["type", "name"],
                            "properties": {"type": {"const": "function"}, "name": {"type": "string"}},
                        },
                    ]
                },
                "text": {
                    "type": ["object", "null"],
                    "properties": {"format": {"anyOf": [{"type": "null"}, *_TEXT_FORMATS]}},
                },
            },
            "anyOf": [  # something to answer: input items, instructions or a stored conversation
                {"properties": {"input": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1}]}}},
                {"required": ["instructions"], "properties": {"instructions": {"type": "string"}}},
                {
                    "required": ["previous_response_id"],
                    "properties": {"previous_response_id": {"type": "string"}},
                },
            ],
        },
        "Response": {
            "type": "object",
            "required": ["id", "object", "created_at", "status", "model", "output"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "response"},
                "created_at": {"type": "integer"},
                "status": {"type": "string"},
                "model": {"type": "string"},
                "output": {"type": "array", "items": {"type": "object"}},
                "output_text": {"type": "string"},
                "usage": {"type": ["object", "null"]},
            },
        },
        "ResponseInputItemList": {
            "type": "object",
            "required": ["object", "data", "has_more"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": {"type": "object"}},
                "first_id": {"type": ["string", "null"]},
                "last_id": {"type": ["string", "null"]},
                "has_more": {"type": "boolean"},
            },
        },
        "ResponseDeleted": {
            "type": "object",
            "required": ["id", "object", "deleted"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "response.deleted"},
                "deleted": {"const": True},
            },
        },
    }


def paths(
    *,
    secured: list[dict[str, list[str]]],
    request_headers: list[dict[str, Any]],
    guard_headers: dict[str, str],
    error_responses: ErrorResponses,
    json_ok: JsonOk,
) -> dict[str, Any]:
    """The four routes."""
    body_errors = ["400", "401", "403", "404", "413", "415", "421", "422", "429", "431", "502", "503", "504"]
    created = json_ok(
        "The Response object (or, with `stream: true`, the Responses event stream).",
        "Response",
        guard_headers,
    )
    created["content"]["text/event-stream"] = {"schema": _EVENTS}
    id_param = [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    stored_errors = error_responses(["400", "401", "404", "431"])
    return {
        "/v1/responses": {
            "post": {
                "operationId": "createResponse",
                "summary": "The Responses API, run through the same policy, cache and ladder as chat.",
                "security": secured,
                "parameters": request_headers,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ResponseRequest"}}
                    },
                },
                "responses": {"200": created, **error_responses(body_errors)},
            }
        },
        "/v1/responses/{response_id}": {
            "get": {
                "operationId": "getResponse",
                "summary": "A stored response of the caller's key (404 for unknown or another key's).",
                "security": secured,
                "parameters": id_param,
                "responses": {"200": json_ok("The stored Response.", "Response", None), **stored_errors},
            },
            "delete": {
                "operationId": "deleteResponse",
                "summary": "Delete a stored response of the caller's key.",
                "security": secured,
                "parameters": id_param,
                "responses": {"200": json_ok("Deleted.", "ResponseDeleted", None), **stored_errors},
            },
        },
        "/v1/responses/{response_id}/input_items": {
            "get": {
                "operationId": "listResponseInputItems",
                "summary": "The input items of a stored response (`limit`, `order`, `after`).",
                "security": secured,
                "parameters": [
                    *id_param,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": json_ok("The items.", "ResponseInputItemList", None), **stored_errors},
            }
        },
    }
