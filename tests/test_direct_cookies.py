"""The direct transport keeps no cookies: a provider's Set-Cookie must never ride along on the next
caller's request (one pooled session serves every tenant)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.settings import Deployment
from proxy.upstream.direct import DirectTransport

COMPLETION = {
    "id": "c",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
}


def test_set_cookie_from_a_provider_is_not_sent_back() -> None:
    seen: list[str | None] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(request.headers.get("cookie"))
        response = web.json_response(COMPLETION)
        response.set_cookie("session", "tenant-a-secret")
        return response

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        transport = DirectTransport()
        dep = Deployment(model="openai/m", api_base=f"http://localhost:{port}/v1", transport="direct")
        try:
            for _ in range(2):
                answer = await transport.complete(dep, {"messages": [{"role": "user", "content": "x"}]})
                assert answer["choices"][0]["message"]["content"] == "hi"
        finally:
            await transport.close()
            await runner.cleanup()

    asyncio.run(scenario())
    assert seen == [None, None]
