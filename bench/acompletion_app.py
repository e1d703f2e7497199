"""Subject (3L): a bare Starlette app calling litellm's `acompletion` (the ceiling for any litellm path)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import orjson  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bench.reference_app import health, serve  # noqa: E402

UPSTREAM_ENV = "BENCH_UPSTREAM"


async def chat(request: Request) -> Response:
    """Forward through `litellm.acompletion` (no retries), answer its response as JSON."""
    body = orjson.loads(await request.body())
    body["model"] = "openai/" + body.get("model", "")
    response = await litellm.acompletion(
        **body, api_base=os.environ[UPSTREAM_ENV], api_key="sk-mock", num_retries=0, max_retries=0
    )
    return Response(orjson.dumps(response.model_dump()), media_type="application/json")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)])


if __name__ == "__main__":
    serve(app)
