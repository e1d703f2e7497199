"""The OpenAPI 3.1 document of guardproxy's own HTTP API, served at `GET /openapi.json`.

Request schemas say exactly what `proxy.wire` accepts (its limits come from the running config), so a
schema-driven fuzzer's valid requests pass parsing and its invalid ones are refused with a 4xx.
Fields guardproxy forwards without checking are listed without a type.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .openapi_schemas import component_schemas
from .responses import openapi as responses_openapi
from .settings import LimitSettings

__all__ = ["openapi", "openapi_document"]

_VERSION = "0.1.0"
_GP_HEADERS = {
    "x-guardproxy-outcome": "pass, repaired, reasked, fallback, flagged, redacted, rejected or streaming.",
    "x-guardproxy-attempts": "Upstream calls made for this answer (0 on a cache hit).",
    "x-guardproxy-deployment": "The deployment `model` string that produced the answer.",
    "x-guardproxy-policy": "The policy applied.",
    "x-guardproxy-cache": "hit, miss, refresh or bypass.",
    "x-guardproxy-cache-key": "The cache key (hex) this request maps to.",
    "x-guardproxy-repairs": "What deterministic repair changed (comma-separated); absent when nothing.",
    "x-guardproxy-total-tokens": "Tokens spent on all upstream attempts for this answer.",
    "x-guardproxy-cost": "US dollars spent on all upstream attempts, where prices are known.",
}
_SSE_EVENT = {  # one server-sent event (OpenAPI 3.1: the schema describes each event)
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A chat.completion.chunk as JSON, then `[DONE]`; a failure after the "
            'stream started is one `{"error": {...}}` event and no `[DONE]`.',
        },
        "event": {"type": "string"},
    },
}
_ERRORS = {
    "400": "Invalid request: not JSON, a missing or ill-typed field (`param` names it), a limit passed.",
    "401": "Missing or wrong API key.",
    "403": "The key may not use this model, or may not choose the policy.",
    "404": "Unknown model alias (or one the key may not use).",
    "413": "The body is larger than `server.max_body_bytes`.",
    "415": "The body was not sent with `Content-Type: application/json`.",
    "421": "The `Host` header names a host not in `server.allowed_hosts`.",
    "422": "The output failed the policy after every repair, re-ask and fallback (or upstream 422).",
    "429": "Rate limited (per-key limits, or every deployment); see `retry-after`.",
    "431": "The request headers are larger than `server.max_header_bytes`.",
    "502": "Every deployment failed, or a provider refused guardproxy's credentials.",
    "503": "guardproxy is at `server.max_in_flight`; see `retry-after`.",
    "504": "The request deadline passed.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _headers(names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "x-request-id": {
            "description": "The client's x-request-id echoed when it sent a valid one (1 to 128 printable"
            " characters), else the same as x-guardproxy-request-id.",
            "required": True,
            "schema": {"type": "string"},
        },
        "x-guardproxy-request-id": {
            "description": "guardproxy's own id for this request (32 hex digits): the request_id of its"
            " logs, audit events and record, and the id to send to POST /v1/feedback.",
            "required": True,
            "schema": {"type": "string"},
        },
    }
    for name, text in names.items():
        out[name] = {"description": text, "schema": {"type": "string"}}
    return out


def _error_responses(statuses: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        headers = _headers({})
        if status in ("429", "503"):
            headers["retry-after"] = {"description": "Seconds to wait.", "schema": {"type": "string"}}
        if status == "422":
            headers["x-should-retry"] = {"description": "Always false.", "schema": {"type": "string"}}
        out[status] = {
            "description": _ERRORS[status],
            "headers": headers,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return out


def _json_ok(description: str, schema: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _headers(headers or {}),
        "content": {"application/json": {"schema": _ref(schema)}},
    }


def _paths() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    chat_ok = _json_ok(
        "The completion (or, with `stream: true`, an SSE stream).", "ChatCompletion", _GP_HEADERS
    )
    chat_ok["content"]["text/event-stream"] = {"schema": _SSE_EVENT}
    request_headers = [
        {
            "name": "x-guardproxy-policy",
            "in": "header",
            "description": "Apply this policy instead of the alias's (keys with allow_policy_override).",
            "schema": {"type": "string"},
        },
        {
            "name": "cache-control",
            "in": "header",
            "description": "`no-cache`: do not read the cache; `no-store`: neither read nor store.",
            "schema": {"type": "string"},
        },
    ]
    body_errors = ["400", "401", "403", "404", "413", "415", "421", "429", "431", "502", "503", "504"]
    responses_api = responses_openapi.paths(
        secured=secured,
        request_headers=request_headers,
        guard_headers=_GP_HEADERS,
        error_responses=_error_responses,
        json_ok=_json_ok,
    )
    return {
        **responses_api,
        "/v1/chat/completions": {
            "post": {
                "operationId": "createChatCompletion",
                "summary": "Chat completion, validated against the alias's policy.",
                "security": secured,
                "parameters": request_headers,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ChatCompletionRequest")}},
                },
                "responses": {"200": chat_ok, **_error_responses(sorted([*body_errors, "422"]))},
            }
        },
        "/v1/embeddings": {
            "post": {
                "operationId": "createEmbedding",
                "summary": "Embeddings, forwarded with retry and fallback, cached; not validated.",
                "security": secured,
                "parameters": request_headers[1:],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("EmbeddingRequest")}},
                },
                "responses": {
                    "200": _json_ok("The embeddings.", "EmbeddingList", _GP_HEADERS),
                    **_error_responses(sorted([*body_errors, "422"])),
                },
            }
        },
        "/v1/models": {
            "get": {
                "operationId": "listModels",
                "summary": "The aliases the caller's key may use.",
                "security": secured,
                "responses": {
                    "200": _json_ok("The model list.", "ModelList"),
                    **_error_responses(["401", "421", "431"]),
                },
            }
        },
        "/v1/models/{model_id}": {
            "get": {
                "operationId": "retrieveModel",
                "summary": "One alias the caller's key may use, as in the list.",
                "security": secured,
                "parameters": [
                    {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json_ok("The model.", "Model"),
                    **_error_responses(["401", "404", "421", "431"]),
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "200 while the process serves.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Serving.",
                        "headers": _headers({}),
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status"],
                                    "properties": {"status": {"const": "ok"}},
                                }
                            }
                        },
                    },
                    **_error_responses(["421", "431"]),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text format.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "headers": _headers({}),
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_error_responses(["421", "431"]),
                },
            }
        },
    }


def openapi_document(limits: LimitSettings | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document; request limits are those of `limits` (the config's)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "guardproxy",
            "version": _VERSION,
            "description": "An OpenAI-compatible LLM gateway that validates, repairs, retries, falls back "
            "and caches model output. Every error has the OpenAI shape (`Error`).",
        },
        "paths": _paths(),
        "components": {
            "schemas": {**component_schemas(limits or LimitSettings()), **responses_openapi.schemas()},
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A key from `auth.keys` (not required when none are configured).",
                }
            },
        },
    }


async def openapi(request: Request) -> Response:
    """`GET /openapi.json`."""
    services = getattr(request.app.state, "services", None)
    limits = services.runtime.settings.limits if services is not None else None
    return Response(orjson.dumps(openapi_document(limits)), media_type="application/json")
