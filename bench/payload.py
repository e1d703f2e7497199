"""The one request and the one ~1 KB structured answer every benchmark subject sees."""

from __future__ import annotations

import json
from typing import Any

LABEL = "fixed"  # the mock behaviour label, the guardproxy alias and the LiteLLM model_name alike
NORECORD_LABEL = "fixed-norecord"  # subject 5n's alias: LABEL's deployment, default policy with record: none
STREAM_LABEL = "streamed"  # the mock label of the time-to-first-byte test: paced chunks
CHUNK_DELAY_MS = 4  # between the streamed label's chunks: buffering shows as a later first byte
MASTER_KEY = "sk-bench-master-key"  # LiteLLM's master key; the other subjects ignore it

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["order_id", "customer", "items", "total", "currency", "status", "notes"],
    "properties": {
        "order_id": {"type": "string"},
        "customer": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "email", "tier"],
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string"},
                "tier": {"type": "string", "enum": ["free", "pro", "enterprise"]},
            },
        },
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["sku", "name", "quantity", "unit_price"],
                "properties": {
                    "sku": {"type": "string"},
                    "name": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 1},
                    "unit_price": {"type": "number", "minimum": 0},
                },
            },
        },
        "total": {"type": "number"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
        "status": {"type": "string", "enum": ["pending", "shipped", "delivered"]},
        "notes": {"type": "string"},
    },
}

ANSWER: dict[str, Any] = {
    "order_id": "ORD-2024-118734",
    "customer": {"name": "Ada Lovelace", "email": "ada@example.org", "tier": "enterprise"},
    "items": [
        {"sku": "KB-7731", "name": "Mechanical keyboard, brown switches", "quantity": 2, "unit_price": 89.5},
        {"sku": "MS-2210", "name": "Wireless mouse with USB-C receiver", "quantity": 3, "unit_price": 24.99},
        {"sku": "MN-2701", "name": "27 inch monitor, 1440p, matte panel", "quantity": 1, "unit_price": 279.0},
        {"sku": "CB-0042", "name": "USB-C cable, braided, 2 metres", "quantity": 5, "unit_price": 9.95},
        {"sku": "DS-5512", "name": "Adjustable desk stand, aluminium", "quantity": 1, "unit_price": 49.0},
    ],
    "total": 606.72,
    "currency": "EUR",
    "status": "shipped",
    "notes": (
        "Customer asked for delivery between 9:00 and 17:00 on weekdays only. The monitor ships from the "
        "second warehouse and may arrive one day later than the rest of the order; the tracking numbers "
        "are sent by email once each parcel leaves. Gift wrapping was not requested. Invoice to the "
        "billing address on file; VAT number validated at checkout."
    ),
}

CONTENT = json.dumps(ANSWER, separators=(",", ":"))


def request_body(*, stream: bool = False, structured: bool = True, model: str = LABEL) -> dict[str, Any]:
    """The chat-completions request body the load generator posts."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "Extract the order as JSON matching the schema."},
            {"role": "user", "content": "Order ORD-2024-118734 for Ada Lovelace: 2 keyboards, 3 mice, ..."},
        ],
        "temperature": 0,
    }
    if structured:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "order", "strict": True, "schema": SCHEMA},
        }
    if stream:
        body["stream"] = True
    return body


def responses_body() -> dict[str, Any]:
    """`request_body()` as a Responses API request (`POST /v1/responses`): the same messages and schema."""
    chat = request_body()
    system, user = chat["messages"]
    schema = chat["response_format"]["json_schema"]
    return {
        "model": chat["model"],
        "instructions": system["content"],
        "input": user["content"],
        "temperature": chat["temperature"],
        "text": {"format": {"type": "json_schema", **schema}},
    }


def completion() -> dict[str, Any]:
    """A chat completion carrying `CONTENT`, as the fixed-JSON app answers it."""
    return {
        "id": "chatcmpl-bench0000000000000000",
        "object": "chat.completion",
        "created": 1700000000,
        "model": LABEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": CONTENT},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 260, "total_tokens": 380},
    }


def mock_options(stream_chunk_chars: int = 64) -> dict[str, Any]:
    """`guardproxy mock-server --config` content: the labels this benchmark uses."""
    streamed = {"stream_chunk_chars": stream_chunk_chars, "chunk_delay_ms": CHUNK_DELAY_MS}
    return {
        LABEL: {"behaviour": "static", "content": CONTENT},
        STREAM_LABEL: {"behaviour": "static", "content": CONTENT, **streamed},
    }
