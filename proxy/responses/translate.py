"""The Responses API as a front door onto chat completions: a Responses request becomes a chat body, a
chat completion becomes a Response object. Pure functions, no I/O.

Only what has a faithful chat equivalent is translated; everything else (built-in tools, hosted prompts,
background runs, reasoning items) is refused with a 400 naming the field, never silently dropped; built-in
tools only pass (left out of the chat body) when the alias has `api: responses` deployments, which get
the Responses body itself (`native`), their Response judged as the chat completion it translates to.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest

__all__ = [
    "ChatTranslation",
    "assistant_message",
    "chat_usage_to_response",
    "new_id",
    "output_items",
    "to_chat",
    "to_response",
]

# Responses fields copied to the chat body under the same name.
_SAME_FIELDS = (
    "temperature",
    "top_p",
    "user",
    "metadata",
    "parallel_tool_calls",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
    "top_logprobs",
)
# Responses features that have no chat equivalent: refused rather than silently ignored.
_REFUSED_FIELDS = {
    "background": "background responses are not served; send the request without `background`",
    "conversation": "conversations are not served; continue with `previous_response_id`",
    "prompt": "stored prompt templates are not served; send `input` and `instructions`",
}
_ROLES = frozenset({"user", "system", "developer", "assistant"})
_STATUS_BY_FINISH = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    """A fresh OpenAI-style id (`resp_...`, `msg_...`, `fc_...`)."""
    return f"{prefix}_{os.urandom(16).hex()}"


@dataclass(frozen=True)
class ChatTranslation:
    """A Responses request as chat: the body to run, and what the Response object echoes back."""

    body: dict[str, Any]  # the chat completions request (before wire.parse_chat_request)
    input_messages: list[dict[str, Any]]  # this turn's input as chat messages (no instructions)
    input_items: list[dict[str, Any]]  # this turn's input as Responses items, for input_items
    echo: dict[str, Any]  # request fields the Response object repeats


def to_chat(
    data: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = (), *, builtin_tools: bool = False
) -> ChatTranslation:
    """Translate a Responses request body; `history` is the stored conversation it continues.

    `builtin_tools`: the alias has an `api: responses` deployment, which receives the built-in tools (and
    a built-in `tool_choice`) as sent; the chat body leaves them out instead of refusing them."""
    for name, why in _REFUSED_FIELDS.items():
        if data.get(name):
            raise InvalidRequest(f"`{name}`: {why}.", param=name)
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("`model` is required and must be a non-empty string.", param="model")
    items, input_messages = _input(data.get("input"))
    messages: list[dict[str, Any]] = []
    instructions = data.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("`instructions` must be a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    messages += [dict(m) for m in history]
    messages += input_messages
    if not messages:
        raise InvalidRequest("`input` must hold at least one item.", param="input")

    body: dict[str, Any] = {"model": model, "messages": messages}
    for name in _SAME_FIELDS:
        if data.get(name) is not None:
            body[name] = data[name]
    if data.get("max_output_tokens") is not None:
        body["max_tokens"] = data["max_output_tokens"]
    if data.get("stream") is not None:
        body["stream"] = data["stream"]
    reasoning = data.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        body["reasoning_effort"] = reasoning["effort"]
    text = data.get("text")
    if text is not None and not isinstance(text, Mapping):
        raise InvalidRequest("`text` must be an object.", param="text")
    text = text or {}
    if text.get("format") is not None:
        body["response_format"] = _response_format(text["format"])
    if text.get("verbosity") is not None:
        body["verbosity"] = text["verbosity"]
    tools = data.get("tools")
    if tools:
        body["tools"] = _tools(tools, builtin_tools)
        if not body["tools"]:
            del body["tools"]
    choice = data.get("tool_choice")
    if choice is not None and not (builtin_tools and _builtin(choice)):
        body["tool_choice"] = _tool_choice(choice)

    echo = {
        "instructions": instructions,
        "max_output_tokens": data.get("max_output_tokens"),
        "metadata": data.get("metadata") or {},
        "parallel_tool_calls": data.get("parallel_tool_calls", True) is not False,
        "previous_response_id": data.get("previous_response_id"),
        "store": data.get("store") is not False,
        "temperature": data.get("temperature"),
        "text": {"format": dict(text.get("format") or {"type": "text"})},
        "tool_choice": data.get("tool_choice") or "auto",
        "tools": list(tools or []),
        "top_p": data.get("top_p"),
        "truncation": data.get("truncation") or "disabled",
        "user": data.get("user"),
    }
    return ChatTranslation(body=body, input_messages=input_messages, input_items=items, echo=echo)


def _input(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`input` as Responses items and as chat messages; a string is one user message (the common case,
    its two forms written directly)."""
    if isinstance(value, str):
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}
        return [item], [{"role": "user", "content": value}]
    items = _input_items(value)
    return items, _items_to_messages(items)


def _input_items(value: Any) -> list[dict[str, Any]]:
    """An `input` array as a list of items, each with its `type`."""
    if not isinstance(value, list):
        raise InvalidRequest("`input` must be a string or an array of input items.", param="input")
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"`input[{i}]` must be an object.", param=f"input[{i}]")
        item = dict(item)
        item.setdefault("type", "message")  # the "easy" message form has no type
        if item["type"] == "message" and isinstance(item.get("content"), str):
            kind = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
        items.append(item)
    return items


def _items_to_messages(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item["type"]
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = _function_call(item, where)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)  # parallel calls of one turn share one assistant message
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"`{where}.call_id` must be a string.", param=f"{where}.call_id")
            if not isinstance(output, str):
                output = _output_text(output, where)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        else:
            raise InvalidRequest(
                f"`{where}.type` '{kind}' is not served by guardproxy; send messages, function_call and"
                " function_call_output items.",
                param=f"{where}.type",
            )
    return messages


def _message(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidRequest(
            f"`{where}.role` must be one of {', '.join(sorted(_ROLES))}.", param=f"{where}.role"
        )
    content = item.get("content")
    if not isinstance(content, list):
        raise InvalidRequest(f"`{where}.content` must be a string or an array.", param=f"{where}.content")
    parts = [_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    if role != "user" or all(p["type"] == "text" for p in parts):
        if any(p["type"] != "text" for p in parts):
            raise InvalidRequest(
                f"`{where}.content` of a `{role}` message may hold text only.", param=f"{where}.content"
            )
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind in ("input_text", "output_text", "text", "refusal"):
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise InvalidRequest(f"`{where}.text` must be a string.", param=f"{where}.text")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise InvalidRequest(
                f"`{where}.image_url` must be a URL or data URL (file_id images are not served).",
                param=f"{where}.image_url",
            )
        image = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k) is not None}
        if not file:
            raise InvalidRequest(f"`{where}` must hold file_data or file_id.", param=where)
        return {"type": "file", "file": file}
    raise InvalidRequest(
        f"`{where}.type` must be input_text, input_image or input_file.", param=f"{where}.type"
    )


def _output_text(output: Any, where: str) -> str:
    """A function_call_output given as content parts: its text parts joined."""
    if isinstance(output, list):
        parts = [_part(p, f"{where}.output[{j}]") for j, p in enumerate(output)]
        if all(p["type"] == "text" for p in parts):
            return "".join(p["text"] for p in parts)
    raise InvalidRequest(f"`{where}.output` must be a string or text parts.", param=f"{where}.output")


def _function_call(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    for name in ("call_id", "name", "arguments"):
        if not isinstance(item.get(name), str):
            raise InvalidRequest(f"`{where}.{name}` must be a string.", param=f"{where}.{name}")
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }


def _response_format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        if not isinstance(schema.get("name"), str) or not isinstance(schema.get("schema"), Mapping):
            raise InvalidRequest(
                "`text.format` json_schema needs a `name` and a `schema` object.", param="text.format"
            )
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        "`text.format.type` must be text, json_object or json_schema.", param="text.format.type"
    )


def _builtin(tool: Any) -> bool:
    return isinstance(tool, Mapping) and tool.get("type") not in ("function", None)


def _tools(tools: Any, builtin_tools: bool = False) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array.", param="tools")
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if builtin_tools and _builtin(tool):
            continue  # for the `api: responses` deployments only
        if kind != "function":
            raise InvalidRequest(
                f"`tools[{i}]`: the built-in tool '{kind}' is not served by this model (none of its"
                " deployments has `api: responses`); declare function tools only.",
                param=f"tools[{i}].type",
            )
        if not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"`tools[{i}].name` must be a string.", param=f"tools[{i}].name")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None
        }
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if (
        isinstance(choice, Mapping)
        and choice.get("type") == "function"
        and isinstance(choice.get("name"), str)
    ):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "`tool_choice` must be auto, none, required or {type: function, name}; built-in tool choices are"
        " not served.",
        param="tool_choice",
    )


def chat_usage_to_response(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chat `usage` in the Responses shape (with the detail objects the SDKs require)."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached), "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def output_items(message: Mapping[str, Any], *, status: str = "completed") -> list[dict[str, Any]]:
    """A chat assistant message as Responses output items: one message item, then one per tool call."""
    items: list[dict[str, Any]] = []
    text = message.get("content")
    refusal = message.get("refusal")
    if text or refusal or not message.get("tool_calls"):
        part: dict[str, Any] = (
            {"type": "refusal", "refusal": refusal}
            if refusal and not text
            else {"type": "output_text", "text": text or "", "annotations": [], "logprobs": []}
        )
        items.append(
            {"id": new_id("msg"), "type": "message", "status": status, "role": "assistant", "content": [part]}
        )
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(
            {
                "id": new_id("fc"),
                "type": "function_call",
                "status": status,
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name", ""),
                "arguments": function.get("arguments") or "",
            }
        )
    return items


def assistant_message(output: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Response output items back as the chat assistant message that continues the conversation."""
    text = "".join(
        part.get("text", "")
        for item in output
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if part.get("type") == "output_text"
    )
    calls = [
        {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        for item in output
        if item.get("type") == "function_call"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def to_response(
    completion: Mapping[str, Any] | None,
    echo: Mapping[str, Any],
    *,
    response_id: str,
    model: str,
    created_at: float | None = None,
    status: str | None = None,
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Response object for a chat completion (or, with `completion` None, an in-progress shell)."""
    choice: Mapping[str, Any] = (completion or {}).get("choices", [{}])[0] if completion else {}
    finish = choice.get("finish_reason")
    if status is None:
        status = "incomplete" if finish in _STATUS_BY_FINISH else "completed" if completion else "in_progress"
    if output is None:
        item_status = "incomplete" if status == "incomplete" else "completed"
        output = output_items(choice.get("message") or {}, status=item_status) if completion else []
    created = (
        created_at if created_at is not None else float((completion or {}).get("created") or time.time())
    )
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(created),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": _STATUS_BY_FINISH.get(str(finish), "max_output_tokens")}
        if status == "incomplete"
        else None,
        "model": model,
        "output": output,
        **echo,
        "reasoning": {"effort": None, "summary": None},
        "usage": chat_usage_to_response((completion or {}).get("usage")),
    }
    if status == "completed":
        response["completed_at"] = int(time.time())
    text = "".join(
        p.get("text", "")
        for i in output
        if i["type"] == "message"
        for p in i["content"]
        if p["type"] == "output_text"
    )
    response["output_text"] = text  # the convenience field; the SDKs also derive it themselves
    return response
