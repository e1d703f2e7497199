"""A MockReply as OpenAI wire bytes: completion JSON, SSE events, error bodies, embeddings."""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from proxy.mock.behaviours import MockReply

__all__ = ["DONE", "completion", "embeddings", "error_body", "error_event", "stream_events"]

DONE = b"data: [DONE]\n\n"
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}
HTML_BODY = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


def error_body(status: int, message: str, code: str | None = None) -> bytes:
    """The OpenAI error object for `status`."""
    kind, default_code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    error = {"message": message, "type": kind, "param": None, "code": code or default_code}
    return orjson.dumps({"error": error})


def error_event(message: str) -> bytes:
    """An in-band SSE error event, as OpenAI sends when a stream fails after it started."""
    return (
        b"data: "
        + orjson.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": None}})
        + b"\n\n"
    )


def completion(reply: MockReply, model: str, rid: str, created: int, n: int = 1) -> bytes:
    """The non-streamed `chat.completion` body."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = list(reply.tool_calls)
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        for i in range(n)
    ]
    usage = dict(reply.usage)
    if n > 1:
        usage["completion_tokens"] *= n
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    body = {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
        "system_fingerprint": "fp_mock",
    }
    return orjson.dumps(body)


def stream_events(
    reply: MockReply, model: str, rid: str, created: int, *, include_usage: bool, n: int = 1
) -> tuple[list[bytes], list[bytes]]:
    """(content events, closing events): role/content/tool-call chunks; finish, usage, [DONE]."""
    base = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_mock",
    }
    if include_usage:
        base["usage"] = None

    def event(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    size = reply.stream_chunk_chars
    body: list[bytes] = []
    closing: list[bytes] = []
    for index in range(n):
        body.append(event(index, {"role": "assistant", "content": "", "refusal": None}))
        text = reply.content or ""
        body += [event(index, {"content": text[i : i + size]}) for i in range(0, len(text), size)]
        for position, call in enumerate(reply.tool_calls):
            body += _tool_call_events(event, index, position, call, size)
        closing.append(event(index, {}, reply.finish_reason))
    if include_usage:
        usage = dict(reply.usage)
        usage["completion_tokens"] *= n
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        closing.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    closing.append(DONE)
    return body, closing


def _tool_call_events(event: Any, index: int, position: int, call: dict[str, Any], size: int) -> list[bytes]:
    function = call["function"]
    head = {
        "index": position,
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": ""},
    }
    out = [event(index, {"tool_calls": [head]})]
    arguments = function["arguments"]
    for i in range(0, len(arguments), size):
        out.append(
            event(
                index,
                {"tool_calls": [{"index": position, "function": {"arguments": arguments[i : i + size]}}]},
            )
        )
    return out


def embeddings(vectors: Sequence[Sequence[float]], model: str, tokens: int, encoding: str) -> bytes:
    """The `/v1/embeddings` body; `encoding` is `float` or `base64` (float32 little-endian, like OpenAI)."""
    data = []
    for index, vector in enumerate(vectors):
        value: Any = list(vector)
        if encoding == "base64":
            packed = array.array("f", vector)
            if sys.byteorder == "big":
                packed.byteswap()
            value = base64.b64encode(packed.tobytes()).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})
