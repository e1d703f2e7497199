"""Assembling OpenAI stream chunks into one chat.completion."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ChunkAssembler"]


def _new_state() -> dict[str, Any]:
    return {"content": [], "refusal": [], "tools": {}, "finish_reason": None, "role": "assistant"}


class ChunkAssembler:
    """Accumulates chunks (content, refusal, tool-call deltas per index) into a completion dict.

    `size` counts the characters the chunks added to the answer: text, refusal, tool names and arguments.
    """

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None
        self.size = 0
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Mapping[str, Any]) -> None:
        self.add_all((chunk,))

    def add_all(self, chunks: Iterable[Mapping[str, Any]]) -> None:
        """Add the chunks that arrived together (one loop: a stream's chunks are dozens of characters each,
        the per-chunk steps are the cost)."""
        states = self._choices
        for chunk in chunks:
            if not self.meta:
                self.meta = {k: chunk.get(k) for k in ("id", "created", "model", "system_fingerprint")}
            if chunk.get("usage"):
                self.usage = dict(chunk["usage"])
            for choice in chunk.get("choices") or ():
                index = choice.get("index", 0)
                state = states.get(index)
                if state is None:  # built once per choice, not per chunk
                    state = states[index] = _new_state()
                delta = choice.get("delta") or {}
                if text := delta.get("content"):
                    state["content"].append(text)
                    self.size += len(text)
                    if len(delta) > 1:  # text and more in one delta (rare)
                        self._add_other(state, delta)
                elif delta:
                    self._add_other(state, delta)
                if choice.get("finish_reason"):
                    state["finish_reason"] = choice["finish_reason"]

    def _add_other(self, state: dict[str, Any], delta: Mapping[str, Any]) -> None:
        """A delta's refusal and tool calls."""
        if text := delta.get("refusal"):
            state["refusal"].append(text)
            self.size += len(text)
        if calls := delta.get("tool_calls"):
            self._add_calls(state["tools"], calls)

    def _add_calls(self, tools: dict[int, dict[str, Any]], calls: Iterable[Mapping[str, Any]]) -> None:
        for call in calls:
            slot = tools.setdefault(call.get("index", 0), {"id": None, "name": [], "arguments": []})
            if call.get("id"):
                slot["id"] = call["id"]
            fn = call.get("function") or {}
            if fn.get("name"):
                slot["name"].append(fn["name"])
                self.size += len(fn["name"])
            if fn.get("arguments"):
                slot["arguments"].append(fn["arguments"])
                self.size += len(fn["arguments"])

    @property
    def finished(self) -> bool:
        """Whether every choice seen has a finish_reason."""
        return bool(self._choices) and all(c["finish_reason"] for c in self._choices.values())

    def text(self, index: int = 0) -> str:
        state = self._choices.get(index)
        return "".join(state["content"]) if state else ""

    def completion(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: dict[str, Any] = {"role": "assistant", "content": "".join(state["content"]) or None}
            if state["refusal"]:
                message["refusal"] = "".join(state["refusal"])
            if state["tools"]:
                message["tool_calls"] = [
                    {
                        "id": slot["id"],
                        "type": "function",
                        "function": {"name": "".join(slot["name"]), "arguments": "".join(slot["arguments"])},
                    }
                    for _, slot in sorted(state["tools"].items())
                ]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": state["finish_reason"] or "stop",
                }
            )
        out: dict[str, Any] = {
            "id": self.meta.get("id") or "",
            "object": "chat.completion",
            "created": self.meta.get("created") or 0,
            "model": self.meta.get("model") or "",
            "choices": choices,
        }
        if self.meta.get("system_fingerprint"):
            out["system_fingerprint"] = self.meta["system_fingerprint"]
        if self.usage is not None:
            out["usage"] = self.usage
        return out
