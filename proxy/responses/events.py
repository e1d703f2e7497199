"""The Responses event stream, built from chat completion chunks. Pure: no I/O.

One translator serves both policy stream modes: a buffered answer reaches it as the chunks
`wire.completion_to_chunks` renders, a passthrough answer as the chunks the relay forwards. Each chat
chunk becomes zero or more events; the final `response.completed` carries the whole Response object.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson

from .translate import chat_usage_to_response, new_id, to_response

__all__ = ["ChunkTranslator", "sse_event"]


def sse_event(event: Mapping[str, Any]) -> bytes:
    """One event as SSE lines: `event: NAME` then `data: {...}`."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _Item:
    """One output item being streamed (a message, or one function call)."""

    def __init__(self, index: int, data: dict[str, Any]) -> None:
        self.index = index
        self.data = data
        self.text = ""
        self.done = False  # given whole (a provider's built-in tool item): nothing left to close

    @property
    def id(self) -> str:
        return str(self.data["id"])


class ChunkTranslator:
    """Chat chunks in, Responses events out, with one `sequence_number` counter for the stream."""

    def __init__(self, echo: Mapping[str, Any], *, response_id: str, model: str, created_at: float) -> None:
        self._echo = echo
        self._id = response_id
        self._model = model
        self._created = created_at
        self._seq = 0
        self._items: list[_Item] = []
        self._message: _Item | None = None
        self._calls: dict[int, _Item] = {}  # chat tool_call index -> its item
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None
        self.verdict: Mapping[str, Any] | None = None
        self.final: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _shell(self, status: str, output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return to_response(
            None,
            self._echo,
            response_id=self._id,
            model=self._model,
            created_at=self._created,
            status=status,
            output=output or [],
        )

    def start(self) -> list[dict[str, Any]]:
        """`response.created` and `response.in_progress`."""
        shell = self._shell("in_progress")
        return [
            self._event("response.created", response=shell),
            self._event("response.in_progress", response=shell),
        ]

    def given(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Whole items ahead of the answer (an `api: responses` provider's web_search_call, ...)."""
        events = []
        for data in items:
            item = self._add(data)
            item.done = True
            events.append(self._event("response.output_item.added", output_index=item.index, item=data))
            events.append(self._event("response.output_item.done", output_index=item.index, item=data))
        return events

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The events one chat chunk makes (choice 0; guardproxy streams answer n=1 on this route)."""
        events: list[dict[str, Any]] = []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if chunk.get("guardproxy"):
            self.verdict = chunk["guardproxy"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text(delta["content"])
            for call in delta.get("tool_calls") or ():
                events += self._call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def _text(self, text: str) -> list[dict[str, Any]]:
        events = []
        if self._message is None:
            item = self._add(
                {
                    "id": new_id("msg"),
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                }
            )
            self._message = item
            events.append(
                self._event(
                    "response.output_item.added", output_index=item.index, item=copy.deepcopy(item.data)
                )
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item.id,
                    output_index=item.index,
                    content_index=0,
                    part=part,
                )
            )
        item = self._message
        item.text += text
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _call(self, call: Mapping[str, Any]) -> list[dict[str, Any]]:
        events = []
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            data = {
                "id": new_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name") or "",
                "arguments": "",
            }
            item = self._calls[index] = self._add(data)
            events.append(
                self._event("response.output_item.added", output_index=item.index, item=copy.deepcopy(data))
            )
        arguments = function.get("arguments") or ""
        if arguments:
            item.text += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=arguments,
                )
            )
        return events

    def _add(self, data: dict[str, Any]) -> _Item:
        item = _Item(len(self._items), data)
        self._items.append(item)
        return item

    def finish(self) -> list[dict[str, Any]]:
        """Close every item, then `response.completed` (or `response.incomplete`) with the whole Response."""
        status = "incomplete" if self._finish in ("length", "content_filter") else "completed"
        # an empty answer is still one (empty) message item, as a buffered one is rendered
        events = self._text("") if all(i.done for i in self._items) else []
        output = []
        for item in self._items:
            data = item.data
            if item.done:
                output.append(data)
                continue
            data["status"] = "incomplete" if status == "incomplete" else "completed"
            if data["type"] == "message":
                part = {"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}
                data["content"] = [part]
                events.append(
                    self._event(
                        "response.output_text.done",
                        item_id=item.id,
                        output_index=item.index,
                        content_index=0,
                        text=item.text,
                        logprobs=[],
                    )
                )
                events.append(
                    self._event(
                        "response.content_part.done",
                        item_id=item.id,
                        output_index=item.index,
                        content_index=0,
                        part=part,
                    )
                )
            else:
                data["arguments"] = item.text
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item.id,
                        output_index=item.index,
                        name=data["name"],
                        arguments=item.text,
                    )
                )
            events.append(
                self._event("response.output_item.done", output_index=item.index, item=copy.deepcopy(data))
            )
            output.append(data)
        completion = {"choices": [{"finish_reason": self._finish}], "usage": self._usage}
        final = to_response(
            completion,
            self._echo,
            response_id=self._id,
            model=self._model,
            created_at=self._created,
            status=status,
            output=output,
        )
        final["usage"] = chat_usage_to_response(self._usage)
        if self.verdict is not None:
            final["guardproxy"] = self.verdict
        self.final = final
        kind = "response.completed" if status == "completed" else "response.incomplete"
        events.append(self._event(kind, response=final))
        return events

    def fail(self, error: Mapping[str, Any]) -> list[dict[str, Any]]:
        """An `error` event and `response.failed`, for a failure after the stream started."""
        inner = error.get("error")
        body: Mapping[str, Any] = inner if isinstance(inner, Mapping) else error
        code = body.get("code") or body.get("type") or "server_error"
        message = str(body.get("message") or "The request failed.")
        extra = {"violations": body["violations"]} if body.get("violations") else {}
        output = [copy.deepcopy(i.data) for i in self._items]
        failed = self._shell("failed", output)
        failed["error"] = {"code": code, "message": message, **extra}
        return [
            self._event("error", code=code, message=message, param=body.get("param"), **extra),
            self._event("response.failed", response=failed),
        ]
