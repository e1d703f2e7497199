"""An OpenAI-wire upstream on loopback that records every body it receives and refuses on request.

A prompt containing `status:NNN` is answered with that HTTP status and an OpenAI error body (the
provider blaming the request); any other prompt is echoed back as a normal completion.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.servers import ServerThread

_STATUS = re.compile(r"status:(\d{3})")


def _text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


class RecordingUpstream:
    """The upstream app plus what it received (`bodies`, in arrival order)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self.server = ServerThread(self.app)

    @property
    def base(self) -> str:
        return self.server.url + "/v1"

    async def _chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.bodies.append(body)
        text = _text(body)
        status = _STATUS.search(text)
        if status:
            code = int(status.group(1))
            error = {"message": f"the request was refused ({code})", "type": "invalid_request_error"}
            return JSONResponse({"error": {**error, "param": None, "code": None}}, status_code=code)
        return JSONResponse(
            {
                "id": "chatcmpl-rec",
                "object": "chat.completion",
                "created": 1,
                "model": str(body.get("model")),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    def calls_with(self, marker: str) -> int:
        """How many received bodies carry `marker` in their last message."""
        return sum(marker in _text(b) for b in self.bodies)
