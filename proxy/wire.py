"""The OpenAI wire format: parsing requests into clean typed objects, rendering answers and SSE."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .content_parts import clean_part
from .errors import InvalidJSON, InvalidRequest
from .settings import LimitSettings

__all__ = [
    "ChatRequest",
    "EmbeddingRequest",
    "SSE_DONE",
    "completion_to_chunks",
    "decode_body",
    "parse_chat_request",
    "parse_embedding_request",
    "sse",
]

SSE_DONE = b"data: [DONE]\n\n"

# Fields of the OpenAI Chat Completions request schema forwarded upstream; everything else is dropped.
_CHAT_FIELDS = frozenset(
    {
        "messages",
        "model",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
_MESSAGE_FIELDS = frozenset(
    {
        "role",
        "content",
        "name",
        "tool_calls",
        "tool_call_id",
        "function_call",
        "refusal",
        "audio",
    }
)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TOOL_CALL_FIELDS = frozenset({"id", "type", "function"})
_FUNCTION_FIELDS = frozenset({"name", "arguments", "description", "parameters", "strict"})
_EMBEDDING_FIELDS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})
MAX_EMBEDDING_DIMENSIONS = 8192  # larger than any provider's vectors; bounds what the mock builds
MAX_TOKEN_ID = 2**32 - 1  # larger than any vocabulary
_DEPTH_MEMO_MAX_BYTES = 64 * 1024  # bounds the depth memo at 64 such schemas


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request; `body` holds only OpenAI fields, ready to forward."""

    body: Mapping[str, Any]
    model: str
    stream: bool
    include_usage: bool

    @property
    def response_format(self) -> Mapping[str, Any] | None:
        rf = self.body.get("response_format")
        return rf if isinstance(rf, Mapping) else None

    @property
    def tools(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.body.get("tools") or ())

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        return list(self.body["messages"])


@dataclass(frozen=True)
class EmbeddingRequest:
    """A validated embeddings request."""

    body: Mapping[str, Any]
    model: str
    inputs: tuple[str, ...]


def decode_body(raw: bytes) -> dict[str, Any]:
    """Parse a request body as a JSON object (400 invalid_json otherwise)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        detail = "nested too deeply" if "recursion" in str(exc).lower() else "not valid JSON"
        raise InvalidJSON(f"The request body is {detail}. Send a JSON object.") from None
    if not isinstance(data, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    return data


def parse_chat_request(data: Mapping[str, Any], limits: LimitSettings) -> ChatRequest:
    """Validate a chat request and keep only the OpenAI fields (400 naming the bad field)."""
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("`model` is required and must be a non-empty string.", param="model")
    # `null` for an optional field means absent, as the OpenAI API reads it.
    body: dict[str, Any] = {k: v for k, v in data.items() if k in _CHAT_FIELDS and v is not None}
    body["messages"] = _messages(data.get("messages"), limits)
    _check_numbers(body, limits)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequest("`stream` must be a boolean.", param="stream")
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("`stream_options` must be an object.", param="stream_options")
    include_usage = bool(options and options.get("include_usage") is True)
    if options is not None:
        body["stream_options"] = {"include_usage": include_usage}
    if "response_format" in body:
        body["response_format"] = _response_format(body["response_format"], limits)
    if "tools" in body:
        body["tools"] = _tools(body["tools"], limits)
    if "stop" in body:
        _stop(body["stop"], limits)
    if "metadata" in body:
        body["metadata"] = _metadata(body["metadata"])
    if "user" in body and not isinstance(body["user"], str):
        raise InvalidRequest("`user` must be a string.", param="user")
    return ChatRequest(body=body, model=model, stream=stream, include_usage=include_usage)


def parse_embedding_request(data: Mapping[str, Any]) -> EmbeddingRequest:
    """Validate an embeddings request."""
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("`model` is required and must be a non-empty string.", param="model")
    raw = _whole(data.get("input"))  # 1.0 is the token id 1 (JSON Schema reads it as an integer too)
    one_token_list = isinstance(raw, list) and bool(raw) and all(map(_token, raw))
    inputs = [raw] if isinstance(raw, str) or one_token_list else raw
    if not isinstance(inputs, list) or not inputs or not all(map(_embedding_input, inputs)):
        raise InvalidRequest(
            "`input` must be a string, a list of strings, a list of token ids or a list of such lists.",
            param="input",
        )
    if len(inputs) > 2048:
        raise InvalidRequest("`input` may hold at most 2048 strings.", param="input")
    body = {k: v for k, v in data.items() if k in _EMBEDDING_FIELDS and v is not None}
    body["input"] = raw
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise InvalidRequest("`encoding_format` must be `float` or `base64`.", param="encoding_format")
    if "dimensions" in body:
        body["dimensions"] = dimensions = _whole(body["dimensions"])
        if not _token(dimensions) or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
            raise InvalidRequest(
                f"`dimensions` must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}.", param="dimensions"
            )
    inputs = [t if isinstance(t, str) else orjson.dumps(t).decode() for t in inputs]
    return EmbeddingRequest(body=body, model=model, inputs=tuple(inputs))


def _whole(value: Any, depth: int = 2) -> Any:
    """`value` with every integral float (`3.0`) as an int, inside lists `depth` levels deep."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list) and depth > 0:
        return [_whole(item, depth - 1) for item in value]
    return value


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID


def _embedding_input(value: Any) -> bool:
    """A string, or a non-empty list of token ids."""
    return isinstance(value, str) or (isinstance(value, list) and bool(value) and all(map(_token, value)))


def _messages(value: Any, limits: LimitSettings) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("`messages` must be a non-empty array of message objects.", param="messages")
    if len(value) > limits.max_messages:
        raise InvalidRequest(f"`messages` may hold at most {limits.max_messages} messages.", param="messages")
    out = []
    for i, msg in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InvalidRequest(f"`{where}` must be an object.", param=where)
        role = msg.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequest(
                f"`{where}.role` must be one of {', '.join(sorted(_ROLES))}.", param=f"{where}.role"
            )
        clean = {k: v for k, v in msg.items() if k in _MESSAGE_FIELDS}
        content = msg.get("content")
        if isinstance(content, list):
            clean["content"] = [clean_part(p, role, f"{where}.content[{j}]") for j, p in enumerate(content)]
        elif not (
            isinstance(content, str) or (content is None and role in ("assistant", "tool", "function"))
        ):
            raise InvalidRequest(
                f"`{where}.content` must be a string or an array of content parts.", param=f"{where}.content"
            )
        if "tool_calls" in clean:
            clean["tool_calls"] = _tool_calls(clean["tool_calls"], f"{where}.tool_calls")
        if "name" in clean and not isinstance(clean["name"], str):
            raise InvalidRequest(f"`{where}.name` must be a string.", param=f"{where}.name")
        out.append(clean)
    return out


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidRequest(f"`{where}` must be an array.", param=where)
    out = []
    for i, call in enumerate(value):
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise InvalidRequest(f"`{where}[{i}]` must be a tool call object.", param=f"{where}[{i}]")
        clean = {k: v for k, v in call.items() if k in _TOOL_CALL_FIELDS}
        clean["function"] = {k: v for k, v in call["function"].items() if k in ("name", "arguments")}
        out.append(clean)
    return out


def _tools(value: Any, limits: LimitSettings) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidRequest("`tools` must be an array.", param="tools")
    if len(value) > limits.max_tools:
        raise InvalidRequest(f"`tools` may hold at most {limits.max_tools} tools.", param="tools")
    out = []
    for i, tool in enumerate(value):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(
                f"`tools[{i}]` must be {{'type': 'function', 'function': {{'name': ...}}}}.",
                param=f"tools[{i}]",
            )
        params = fn.get("parameters")
        if params is not None:
            if not isinstance(params, dict):
                raise InvalidRequest(
                    f"`tools[{i}].function.parameters` must be an object.",
                    param=f"tools[{i}].function.parameters",
                )
            _check_depth(params, limits.max_schema_depth, f"tools[{i}].function.parameters")
        out.append({"type": "function", "function": {k: v for k, v in fn.items() if k in _FUNCTION_FIELDS}})
    return out


def _response_format(value: Any, limits: LimitSettings) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(
            "`response_format.type` must be text, json_object or json_schema.", param="response_format"
        )
    if kind != "json_schema":
        return {"type": kind}
    js = value.get("json_schema")
    if not isinstance(js, dict) or not isinstance(js.get("name"), str):
        raise InvalidRequest(
            "`response_format.json_schema` must be an object with a `name`.",
            param="response_format.json_schema",
        )
    schema = js.get("schema", {})
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "`response_format.json_schema.schema` must be an object.",
            param="response_format.json_schema.schema",
        )
    _check_depth(schema, limits.max_schema_depth, "response_format.json_schema.schema")
    clean = {k: v for k, v in js.items() if k in ("name", "description", "schema", "strict")}
    return {"type": "json_schema", "json_schema": clean}


def _check_depth(value: Any, limit: int, param: str) -> None:
    if _deeper_than(value, limit):
        raise InvalidRequest(f"`{param}` is nested deeper than {limit} levels.", param=param)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests deeper than `limit` levels (itself level 1; each dict or list adds one).

    The same schema comes with every request of an app, so its JSON text is looked up in a memo first.
    Serialising never hides a level (it can add some: a tuple, a leaf here, becomes an array), so a
    shallow enough text settles it; a deeper one, or a value orjson will not write, is walked itself.
    """
    try:
        blob = orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError:
        return _walk_deeper_than(value, limit)
    if len(blob) <= _DEPTH_MEMO_MAX_BYTES and not _json_deeper_than(blob, limit):
        return False
    return _walk_deeper_than(value, limit)


@functools.lru_cache(maxsize=64)
def _json_deeper_than(blob: bytes, limit: int) -> bool:
    try:
        document = orjson.loads(blob)
    except orjson.JSONDecodeError:  # an orjson.Fragment holding a broken text: not proven shallow
        return True
    return _walk_deeper_than(document, limit)


def _walk_deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False


def _check_numbers(body: dict[str, Any], limits: LimitSettings) -> None:
    ranges: dict[str, tuple[float, float, bool]] = {
        "temperature": (0, 2, False),
        "top_p": (0, 1, False),
        "presence_penalty": (-2, 2, False),
        "frequency_penalty": (-2, 2, False),
        "n": (1, limits.max_n, True),
        "max_tokens": (1, limits.max_tokens, True),
        "max_completion_tokens": (1, limits.max_tokens, True),
        "seed": (-(2**63), 2**63 - 1, True),
        "top_logprobs": (0, 20, True),
    }
    for name, (low, high, integer) in ranges.items():
        if name not in body or body[name] is None:
            continue
        value = body[name]
        if integer and isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = body[name] = int(value)  # JSON Schema's integer: 5.0 is 5
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or (isinstance(value, float) and not math.isfinite(value)):
            kind = "an integer" if integer else "a number"
            raise InvalidRequest(f"`{name}` must be {kind}.", param=name)
        if not low <= value <= high:
            raise InvalidRequest(f"`{name}` must be between {low:g} and {high:g}.", param=name)


def _stop(value: Any, limits: LimitSettings) -> None:
    if isinstance(value, str):
        return
    if (
        not isinstance(value, list)
        or len(value) > limits.max_stop
        or not all(isinstance(s, str) for s in value)
    ):
        raise InvalidRequest(
            f"`stop` must be a string or an array of at most {limits.max_stop} strings.", param="stop"
        )


def _metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidRequest("`metadata` must be an object of string values.", param="metadata")
    # OpenAI metadata values are strings; nested objects (where provider settings hide) are dropped
    return {str(k): v for k, v in list(value.items())[:16] if isinstance(v, str) and len(v) <= 512}


def sse(payload: Mapping[str, Any]) -> bytes:
    """One SSE event carrying `payload` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def completion_to_chunks(
    completion: Mapping[str, Any],
    *,
    include_usage: bool,
    chunk_chars: int = 64,
    extra_last: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Render a complete chat.completion as the chunks OpenAI would have streamed."""
    base = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model", ""),
    }
    if completion.get("system_fingerprint") is not None:
        base["system_fingerprint"] = completion["system_fingerprint"]
    choices = completion.get("choices") or []
    # OpenAI sends a chunk with empty `choices` only as the usage chunk: without one, our verdict
    # rides on the last chunk that carries a finish_reason.
    verdict_on_finish = extra_last if extra_last and not include_usage else None
    for position, choice in enumerate(choices):
        index = choice.get("index", 0)
        msg = choice.get("message") or {}

        def chunk(delta: dict[str, Any], finish: str | None = None, index: int = index) -> dict[str, Any]:
            out = {
                **base,
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                out["usage"] = None
            return out

        yield chunk({"role": "assistant", "content": ""})
        text = msg.get("content")
        if isinstance(text, str):
            for start in range(0, len(text), chunk_chars):
                yield chunk({"content": text[start : start + chunk_chars]})
        if msg.get("refusal"):
            yield chunk({"refusal": msg["refusal"]})
        for i, call in enumerate(msg.get("tool_calls") or []):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call.get("id"),
                            "type": "function",
                            "function": call.get("function", {}),
                        }
                    ]
                }
            )
        finish = chunk({}, choice.get("finish_reason") or "stop")
        if verdict_on_finish and position == len(choices) - 1:
            finish.update(verdict_on_finish)
        yield finish
    if include_usage:
        last = {**base, "choices": [], "usage": completion.get("usage")}
        if extra_last:
            last.update(extra_last)
        yield last
