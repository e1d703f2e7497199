"""`/v1/responses` with real clients: openai-python, openai-node, the OpenAI Agents SDK (its default
model class is the Responses one), the Vercel AI SDK's default `openai(...)` provider and pydantic-ai's
`OpenAIResponsesModel`. Broken first answers (the `fence` aliases) are repaired on this route as on chat.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.models.openai_provider import OpenAIProvider as AgentsProvider
from pydantic import BaseModel
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import NativeOutput
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.compat.conftest import COMPAT, NODE, Proxy, run_json

pytestmark = pytest.mark.compat
PROMPT = "Say hello to the compatibility suite."


class Person(BaseModel):
    name: str
    age: int


def _is_person(value: Any) -> bool:
    return isinstance(value["name"], str) and isinstance(value["age"], int)


def node(script: str, case: str, proxy: Proxy, model: str) -> Any:
    return run_json([NODE, str(COMPAT / "node" / script), case, proxy.base_url, model])


# openai-python


def client(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key="sk-compat", max_retries=0)


def test_python_create(proxy: Proxy, model: Any) -> None:
    response = client(proxy).responses.create(model=model("echo"), input=PROMPT)
    assert response.output_text == PROMPT and response.status == "completed"
    assert response.usage is not None and response.usage.total_tokens > 0


@pytest.mark.parametrize("stem", ["schema", "fence"])
def test_python_parse(proxy: Proxy, model: Any, stem: str) -> None:
    response = client(proxy).responses.parse(model=model(stem), input=PROMPT, text_format=Person)
    assert isinstance(response.output_parsed, Person)


@pytest.mark.parametrize("stem", ["schema", "fence"])
def test_python_stream(proxy: Proxy, model: Any, stem: str) -> None:
    with client(proxy).responses.stream(model=model(stem), input=PROMPT, text_format=Person) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert isinstance(final.output_parsed, Person) and Person.model_validate_json(deltas)


# openai-node


def test_node_create(proxy: Proxy, model: Any) -> None:
    result = node("responses_node.mjs", "create", proxy, model("echo"))
    assert result["text"] == PROMPT and result["status"] == "completed" and result["id"].startswith("resp_")


@pytest.mark.parametrize("stem", ["echo", "pii"])  # pii: a passthrough-free redacting policy
def test_node_create_stream(proxy: Proxy, model: Any, stem: str) -> None:
    result = node("responses_node.mjs", "createStream", proxy, model(stem))
    assert result["text"] == PROMPT
    assert result["types"][:2] == ["response.created", "response.in_progress"]
    assert result["types"][-1] == "response.completed"
    assert result["sequence"] == list(range(len(result["sequence"])))


@pytest.mark.parametrize(("case", "stem"), [("parse", "schema"), ("parse", "fence"), ("stream", "fence")])
def test_node_parse_zod(proxy: Proxy, model: Any, case: str, stem: str) -> None:
    assert _is_person(node("responses_node.mjs", case, proxy, model(stem))["parsed"])


def test_node_previous_response(proxy: Proxy, model: Any) -> None:
    result = node("responses_node.mjs", "previous", proxy, model("echo"))
    assert result == {"first": PROMPT, "second": "And again.", "items": 1}


# the OpenAI Agents SDK, with its default provider and model class (Responses)


def _run_config(proxy: Proxy) -> RunConfig:
    # its own client: the provider's default one shares an httpx client across event loops
    client = openai.AsyncOpenAI(base_url=proxy.base_url, api_key="sk-compat", max_retries=0)
    provider = AgentsProvider(openai_client=client)
    return RunConfig(model_provider=provider, tracing_disabled=True)


def test_agents_tool_two_turns(proxy: Proxy, model: Any) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"It is sunny in {city}."

    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=model("schema"))
    result = Runner.run_sync(agent, "Weather in Paris?", run_config=_run_config(proxy))
    kinds = [item.type for item in result.new_items]
    assert calls and kinds[:2] == ["tool_call_item", "tool_call_output_item"]
    assert kinds[-1] == "message_output_item" and isinstance(result.final_output, str)
    assert len(result.raw_responses) == 2


@pytest.mark.parametrize("stem", ["schema", "fence"])
def test_agents_output_type(proxy: Proxy, model: Any, stem: str) -> None:
    agent = Agent(name="people", output_type=Person, model=model(stem))
    result = Runner.run_sync(agent, PROMPT, run_config=_run_config(proxy))
    assert isinstance(result.final_output, Person)


def test_agents_streamed(proxy: Proxy, model: Any) -> None:
    async def main() -> str:
        agent = Agent(name="echo", model=model("echo"))
        run = Runner.run_streamed(agent, PROMPT, run_config=_run_config(proxy))
        async for _ in run.stream_events():
            pass
        return str(run.final_output)

    assert asyncio.run(main()) == PROMPT


# the Vercel AI SDK's default OpenAI provider


@pytest.mark.parametrize(
    ("case", "stem"), [("generateText", "echo"), ("streamText", "echo"), ("streamText", "pii")]
)
def test_ai_sdk_text(proxy: Proxy, model: Any, case: str, stem: str) -> None:
    assert node("ai_sdk_responses.mjs", case, proxy, model(stem)) == {"text": PROMPT, "finishReason": "stop"}


@pytest.mark.parametrize("stem", ["schema", "fence"])
def test_ai_sdk_generate_object(proxy: Proxy, model: Any, stem: str) -> None:
    assert _is_person(node("ai_sdk_responses.mjs", "generateObject", proxy, model(stem))["object"])


# pydantic-ai's OpenAIResponsesModel


def _pydantic_agent(proxy: Proxy, name: str, **kw: Any) -> PydanticAgent[Any, Any]:
    provider = OpenAIProvider(base_url=proxy.base_url, api_key="sk-compat")
    return PydanticAgent(OpenAIResponsesModel(name, provider=provider), **kw)


def test_pydantic_ai_text(proxy: Proxy, model: Any) -> None:
    assert _pydantic_agent(proxy, model("echo")).run_sync(PROMPT).output == PROMPT


@pytest.mark.parametrize("stem", ["schema", "fence"])
@pytest.mark.parametrize("native", [False, True], ids=["tool-output", "native-output"])
def test_pydantic_ai_structured(proxy: Proxy, model: Any, stem: str, native: bool) -> None:
    output_type: Any = NativeOutput(Person) if native else Person
    result = _pydantic_agent(proxy, model(stem), output_type=output_type).run_sync(PROMPT)
    assert isinstance(result.output, Person)
