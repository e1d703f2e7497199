"""The original Responses body of a `/v1/responses` request, for the alias's `api: responses` deployments.

The route builds one `NativeRequest` and hands it to `pipeline.handle_chat`; the ladder asks it which
deployments it serves, what body each attempt sends (a re-ask's extra turns appended to `input`) and
turns the provider's Response into the chat completion it judges. The built-in tool items of the answer
the ladder accepted (web_search_call, ...) are kept here for the Response the client gets back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..settings import Deployment, ModelAlias
from ..upstream import uses_direct
from .translate import assistant_message, new_id

__all__ = ["NativeRequest", "has_native", "is_native"]

# What guardproxy keeps to itself: the conversation is sent whole (`previous_response_id` is ours, not
# the provider's) and the provider is asked not to stream (buffer mode)
_OURS = ("previous_response_id", "stream", "stream_options")


def is_native(dep: Deployment) -> bool:
    """Whether `dep` is called at the provider's /v1/responses (an `api: responses` direct deployment)."""
    return dep.api == "responses" and uses_direct(dep)


def has_native(alias: ModelAlias | None) -> bool:
    """Whether some deployment of `alias` takes Responses requests (then built-in tools pass through)."""
    return alias is not None and any(is_native(d) for d in alias.deployments)


@dataclass
class NativeRequest:
    """One `/v1/responses` request's body, as the provider's Responses API takes it."""

    body: dict[str, Any]  # the client's body: previous_response_id resolved into `input`
    chat_messages: int  # how many chat messages the translated request began with (re-asks add turns)
    items: list[dict[str, Any]] = field(default_factory=list)  # the accepted answer's built-in items

    @classmethod
    def of(
        cls,
        data: Mapping[str, Any],
        history: Sequence[Mapping[str, Any]],
        input_items: list[dict[str, Any]],
        chat_messages: int,
    ) -> NativeRequest:
        body = {k: v for k, v in data.items() if k not in _OURS}
        body["input"] = [*messages_to_items(history), *input_items]
        return cls(body, chat_messages)

    @property
    def builtin(self) -> bool:
        """Whether the request declares built-in tools (their items are not in a cached completion)."""
        return any(
            isinstance(t, Mapping) and t.get("type") != "function" for t in self.body.get("tools") or ()
        )

    def serves(self, dep: Deployment) -> bool:
        return is_native(dep)

    def request(self, chat_body: Mapping[str, Any]) -> dict[str, Any]:
        """The Responses body for one attempt whose chat form is `chat_body` (a re-ask: more turns)."""
        extra = list(chat_body.get("messages") or ())[self.chat_messages :]
        if not extra:
            return self.body
        return {**self.body, "input": [*self.body["input"], *messages_to_items(extra)]}

    def completion(self, response: Mapping[str, Any]) -> dict[str, Any]:
        """The provider's Response as a chat completion; its built-in tool items are kept for the client."""
        self.items = builtin_items(response)
        return response_to_completion(response)


_FINISH_BY_REASON = {"max_output_tokens": "length", "content_filter": "content_filter"}


def response_to_completion(response: Mapping[str, Any]) -> dict[str, Any]:
    """A provider's Response object as the chat completion the ladder judges: output_text -> content,
    refusal -> refusal, function_call items -> tool_calls, usage; built-in tool items are left out."""
    output = [i for i in response.get("output") or () if isinstance(i, Mapping)]
    message = assistant_message(output)
    refusal = "".join(
        part.get("refusal") or ""
        for item in output
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, Mapping) and part.get("type") == "refusal"
    )
    if refusal:
        message["refusal"] = refusal
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        finish = _FINISH_BY_REASON.get(str(reason), "length")
    else:
        finish = "tool_calls" if message.get("tool_calls") else "stop"
    usage = response.get("usage") or {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return {
        "id": "chatcmpl-" + str(response.get("id") or new_id("resp")),
        "object": "chat.completion",
        "created": int(response.get("created_at") or time.time()),
        "model": str(response.get("model") or ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": int(usage.get("total_tokens") or prompt + completion),
            "prompt_tokens_details": {
                "cached_tokens": int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
            },
            "completion_tokens_details": {
                "reasoning_tokens": int(
                    (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
                )
            },
        },
    }


def builtin_items(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The provider's own output items (web_search_call, reasoning, ...): what a chat completion cannot
    carry, handed back to the client as they came."""
    return [
        dict(i)
        for i in response.get("output") or ()
        if isinstance(i, Mapping) and i.get("type") not in ("message", "function_call")
    ]


def messages_to_items(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages (a stored conversation, a re-ask's turns) as Responses input items."""
    items: list[dict[str, Any]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role == "tool":
            items.append(
                {"type": "function_call_output", "call_id": m.get("tool_call_id"), "output": content or ""}
            )
            continue
        if isinstance(content, list):
            kind = "output_text" if role == "assistant" else "input_text"
            parts = [
                {"type": kind, "text": p.get("text", "")} if p.get("type") == "text" else _input_part(p)
                for p in content
            ]
            items.append({"type": "message", "role": role, "content": parts})
        elif content:
            items.append({"type": "message", "role": role, "content": content})
        for call in m.get("tool_calls") or ():
            function = call.get("function") or {}
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments") or "",
                }
            )
    return items


def _input_part(part: Mapping[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        image = part.get("image_url") or {}
        return {"type": "input_image", "image_url": image.get("url"), "detail": image.get("detail") or "auto"}
    if part.get("type") == "file":
        return {"type": "input_file", **(part.get("file") or {})}
    return dict(part)
