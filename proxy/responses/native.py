"""The original Responses body of a `/v1/responses` request, for the alias's `api: responses` deployments.

The route builds one `NativeRequest` and hands it to `pipeline.handle_chat`; the ladder asks it which
deployments it serves, what body each attempt sends (a re-ask's extra turns appended to `input`) and
turns the provider's Response into the chat completion it judges. The built-in tool items of the answer
the ladder accepted (web_search_call, ...) are kept here for the Response the client gets back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..settings import Deployment, ModelAlias
from ..upstream import uses_direct
from .translate import builtin_items, messages_to_items, response_to_completion

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
