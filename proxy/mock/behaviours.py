"""What a mock deployment answers to one call: pure functions, no I/O."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from proxy.mock import schema_gen
from proxy.mock._formats import WORDS
from proxy.mock.defects import DEFAULT_SCHEMA, break_json
from proxy.mock.options import BEHAVIOURS, COMMON, MockConfigError, validate_options

__all__ = [
    "MockConfigError",
    "MockReply",
    "embed",
    "embedding_texts",
    "plan_reply",
    "usage_for",
    "validate_options",
]

Kind = Literal["content", "error", "timeout", "malformed", "stall", "stream_error"]
Generate = Callable[[Any, int], Any]

_ERROR_MESSAGES = {
    400: "mock: the request was rejected",
    401: "mock: invalid API key",
    403: "mock: this key may not use this model",
    404: "mock: the model does not exist",
    429: "mock: rate limit exceeded, retry later",
    500: "mock: the server had an error while processing the request",
    502: "mock: bad gateway",
    503: "mock: the server is overloaded",
}


@dataclass(frozen=True)
class MockReply:
    """One planned answer; the provider and the HTTP server turn it into litellm objects or bytes."""

    kind: Kind
    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    status: int = 200
    retry_after: float | None = None
    latency_ms: float = 0.0
    stream_chunk_chars: int = 16
    chunk_delay_ms: float = 0.0  # between stream chunks
    stream_cut: bool = False
    finish_reason: str = "stop"
    usage: Mapping[str, int] = field(default_factory=dict)
    body: str | None = None  # malformed: which body (`html` | `truncated` | `wrong_content_type`)
    message: str = ""  # error / stream_error: the error's text


def plan_reply(
    behaviour: str,
    options: Mapping[str, Any],
    request: Mapping[str, Any],
    call_index: int,
    *,
    generate: Generate = schema_gen.generate,
) -> MockReply:
    """The answer `mock/<behaviour>` gives to `request` on its `call_index`-th call (0-based)."""
    if behaviour not in BEHAVIOURS:
        validate_options(behaviour, {})  # raises with a did-you-mean
    if behaviour == "script":
        steps = options["script"]
        step = dict(steps[min(call_index, len(steps) - 1)])
        inherited = {k: v for k, v in options.items() if k in COMMON}
        return plan_reply(
            step.pop("behaviour"), {**inherited, **step}, request, call_index, generate=generate
        )
    # Replies are built as one dict and constructed once: this runs per request on the benchmark's floor.
    fields = _plan(behaviour, options, request, call_index, int(options.get("seed", 0)), generate)
    if fields["kind"] == "content":
        if "finish_reason" in options:
            fields["finish_reason"] = options["finish_reason"]
        _limit(fields, request)
    if "latency_ms" in options:
        fields["latency_ms"] = float(options["latency_ms"])
    if "stream_chunk_chars" in options:
        fields["stream_chunk_chars"] = int(options["stream_chunk_chars"])
    if "chunk_delay_ms" in options:
        fields["chunk_delay_ms"] = float(options["chunk_delay_ms"])
    if "stream_cut" in options:
        fields["stream_cut"] = bool(options["stream_cut"])
    fields["usage"] = usage_for(request, fields.get("content"), fields.get("tool_calls", ()))
    return MockReply(**fields)


Fields = dict[str, Any]


def _plan(
    behaviour: str,
    options: Mapping[str, Any],
    request: Mapping[str, Any],
    call_index: int,
    seed: int,
    generate: Generate,
) -> Fields:
    if behaviour == "echo":
        return {"kind": "content", "content": last_user_text(request)}
    if behaviour == "static":
        calls = tuple(_tool_call(c, i) for i, c in enumerate(options.get("tool_calls") or ()))
        content = options.get("content", None if calls else "")
        finish = "tool_calls" if calls else "stop"
        return {"kind": "content", "content": content, "tool_calls": calls, "finish_reason": finish}
    if behaviour == "error":
        return _error(int(options.get("status", 500)), options.get("retry_after"), options.get("message"))
    if behaviour == "timeout":
        return {"kind": "timeout"}
    if behaviour == "flaky":
        return _flaky(options, request, call_index, seed, generate)
    try:
        if behaviour == "broken-json":
            return _broken(options.get("defect", "fence"), request, seed, generate)
        answer = _answer(options, request, seed, generate)
    except schema_gen.SchemaGenError as exc:
        return _error(400, None, f"mock/{behaviour} cannot answer this response_format / tool schema: {exc}")
    if behaviour == "malformed":
        return {**answer, "kind": "malformed", "body": options.get("body", "html")}
    if behaviour in ("stall", "stream_error"):
        return {**answer, "kind": behaviour, "message": options.get("message", _STREAM_FAILED)}
    return answer  # schema


_STREAM_FAILED = "mock: the stream failed mid-way"


def _answer(options: Mapping[str, Any], request: Mapping[str, Any], seed: int, generate: Generate) -> Fields:
    """The `schema` answer (or `options.content` when given): JSON, a tool call, or plain text."""
    if isinstance(options.get("content"), str):
        return {"kind": "content", "content": options["content"]}
    tool = forced_tool(request)
    if tool is None and options.get("auto_tools", True):  # a model given tools and `auto` uses one
        tool = auto_tool(request)
    if tool is not None:
        arguments = orjson.dumps(generate(tool.get("parameters") or {"type": "object"}, seed)).decode()
        call = _tool_call({"function": {"name": tool.get("name", "tool"), "arguments": arguments}}, 0)
        return {"kind": "content", "content": None, "tool_calls": (call,), "finish_reason": "tool_calls"}
    schema = response_schema(request)
    if schema is None:
        rng = random.Random(seed)
        return {
            "kind": "content",
            "content": "Mock answer: " + " ".join(rng.choice(WORDS) for _ in range(8)) + ".",
        }
    return {"kind": "content", "content": orjson.dumps(generate(schema, seed)).decode()}


def _broken(defect: str, request: Mapping[str, Any], seed: int, generate: Generate) -> Fields:
    tool = forced_tool(request)
    schema = (tool.get("parameters") if tool else None) or response_schema(request) or DEFAULT_SCHEMA
    text, finish = break_json(generate(schema, seed), defect, schema)
    if tool is None:
        return {"kind": "content", "content": text, "finish_reason": finish}
    call = _tool_call({"function": {"name": tool.get("name", "tool"), "arguments": text}}, 0)
    finish = "length" if finish == "length" else "tool_calls"
    return {"kind": "content", "content": None, "tool_calls": (call,), "finish_reason": finish}


def _flaky(
    options: Mapping[str, Any], request: Mapping[str, Any], call_index: int, seed: int, generate: Generate
) -> Fields:
    rng = random.Random(f"flaky:{seed}:{call_index}")
    if rng.random() >= float(options.get("fault_rate", 0.2)):
        return _answer(options, request, seed, generate)
    fault = rng.choice(list(options.get("faults") or [500]))
    if isinstance(fault, int):
        return _error(fault, options.get("retry_after"), None)
    if fault == "timeout":
        return {"kind": "timeout"}
    answer = _answer(options, request, seed, generate)
    if fault == "cut":
        return {**answer, "stream_cut": True}
    if fault == "malformed":
        return {**answer, "kind": "malformed", "body": "html"}
    return {**answer, "kind": fault, "message": _STREAM_FAILED}


def _error(status: int, retry_after: Any, message: Any) -> Fields:
    text = message or _ERROR_MESSAGES.get(status, f"mock: upstream error {status}")
    retry = None if retry_after is None else float(retry_after)
    return {"kind": "error", "status": status, "retry_after": retry, "message": text}


def _tool_call(call: Mapping[str, Any], index: int) -> dict[str, Any]:
    function = call.get("function") or call  # the OpenAI shape, or the short `{name, arguments}`
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    name = str(function.get("name", "tool"))
    digest = hashlib.blake2b(f"{index}:{name}:{arguments}".encode(), digest_size=8).hexdigest()
    return {
        "id": call.get("id") or f"call_{digest}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _limit(fields: Fields, request: Mapping[str, Any]) -> None:
    """Honour `stop` sequences and `max_tokens` / `max_completion_tokens` (4 characters per token)."""
    content = fields.get("content")
    if not content:
        return
    stops = request.get("stop")
    if stops:
        for stop in [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []:
            if isinstance(stop, str) and stop and stop in content:
                content = content[: content.index(stop)]
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 and len(content) > limit * 4:
        content, fields["finish_reason"] = content[: limit * 4], "length"
    fields["content"] = content


def last_user_text(request: Mapping[str, Any]) -> str:
    """The text of the last user message (text parts joined), or ''."""
    for message in reversed(request.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


def response_schema(request: Mapping[str, Any]) -> Any:
    """The request's response_format JSON Schema; DEFAULT_SCHEMA for json_object; None for text."""
    fmt = request.get("response_format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        return spec.get("schema", True) if isinstance(spec, Mapping) else True
    return DEFAULT_SCHEMA if fmt.get("type") == "json_object" else None


def forced_tool(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The tool `tool_choice` forces (`required` means the first tool), as its `function` mapping."""
    tools = [t.get("function") or {} for t in request.get("tools") or () if isinstance(t, Mapping)]
    choice = request.get("tool_choice")
    if not tools or choice in (None, "auto", "none"):
        return None
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == name), tools[0])
    return tools[0]


def auto_tool(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first tool when `tool_choice` is `auto` (or absent) and the request asks no response_format."""
    tools = [t.get("function") or {} for t in request.get("tools") or () if isinstance(t, Mapping)]
    if not tools or request.get("tool_choice") not in (None, "auto") or response_schema(request) is not None:
        return None
    messages = request.get("messages") or [{}]
    if isinstance(messages[-1], Mapping) and messages[-1].get("role") == "tool":
        return None  # the tool's result is in: answer in text, as a model would (no endless agent loop)
    return tools[0]


def usage_for(
    request: Mapping[str, Any], content: str | None, tool_calls: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Deterministic token counts: one token per 4 characters, at least 1 prompt token."""
    prompt_chars = sum(
        len(_text_of(m.get("content"))) for m in request.get("messages") or () if isinstance(m, Mapping)
    )
    completion_chars = len(content or "") + sum(len(c["function"]["arguments"]) for c in tool_calls)
    prompt, completion = max(1, math.ceil(prompt_chars / 4)), math.ceil(completion_chars / 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def embedding_texts(raw: Any) -> list[str]:
    """An embeddings `input` (string, strings, token ids, lists of token ids) as one text per vector."""
    items = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list | tuple) else []
    if items and all(isinstance(t, int) for t in items):
        items = [items]  # one list of token ids is one input
    return [t if isinstance(t, str) else "tokens:" + ",".join(map(str, t)) for t in items]


def embed(texts: Sequence[str], dimensions: int = 8, seed: int = 0) -> list[list[float]]:
    """Deterministic unit vectors: the same text, dimensions and seed always give the same vector."""
    vectors = []
    for text in texts:
        digest = hashlib.blake2b(f"{seed}:{dimensions}:{text}".encode(), digest_size=16).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
        norm = math.sqrt(sum(x * x for x in raw)) or 1.0
        vectors.append([x / norm for x in raw])
    return vectors
