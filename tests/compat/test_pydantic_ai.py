"""pydantic-ai: an OpenAI chat model pointed at guardproxy, plain and with structured output."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.providers.openai import OpenAIProvider

try:
    from pydantic_ai.models.openai import OpenAIChatModel as ChatModel
except ImportError:  # older releases
    from pydantic_ai.models.openai import OpenAIModel as ChatModel  # type: ignore[attr-defined,no-redef]

from tests.compat.conftest import Proxy

pytestmark = pytest.mark.compat
PROMPT = "Say hello to the compatibility suite."


class Person(BaseModel):
    name: str
    age: int


def agent(proxy: Proxy, name: str, **kw: Any) -> Agent[Any, Any]:
    provider = OpenAIProvider(base_url=proxy.base_url, api_key="sk-compat")
    return Agent(ChatModel(name, provider=provider), **kw)


def test_text(proxy: Proxy, model: Any) -> None:
    assert agent(proxy, model("echo")).run_sync(PROMPT).output == PROMPT


@pytest.mark.parametrize("stem", ["schema", "fence"])
def test_structured_output(proxy: Proxy, model: Any, stem: str) -> None:
    result = agent(proxy, model(stem), output_type=Person).run_sync(PROMPT)
    assert isinstance(result.output, Person)


def test_stream_text(proxy: Proxy, model: Any) -> None:
    async def main() -> str:
        async with agent(proxy, model("pii")).run_stream(PROMPT) as run:
            return "".join([part async for part in run.stream_text(delta=True)])

    import asyncio

    assert asyncio.run(main()) == PROMPT
