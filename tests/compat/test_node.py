"""Node clients (Node 22 from npm): openai-node and the Vercel AI SDK, run as scripts printing JSON."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.compat.conftest import COMPAT, NODE, Proxy, run_json

pytestmark = pytest.mark.compat
PROMPT = "Say hello to the compatibility suite."


def node(script: str, case: str, proxy: Proxy, model: str) -> Any:
    return run_json([NODE, str(COMPAT / "node" / script), case, proxy.base_url, model])


@pytest.mark.parametrize(
    ("case", "stem"), [("create", "echo"), ("quickstart", "echo"), ("quickstart", "pii")]
)
def test_openai_node_text(proxy: Proxy, model: Any, case: str, stem: str) -> None:
    assert node("openai_node.mjs", case, proxy, model(stem)) == {"content": PROMPT}


@pytest.mark.parametrize("stem", ["echo", "pii"])
def test_openai_node_usage_chunk(proxy: Proxy, model: Any, stem: str) -> None:
    result = node("openai_node.mjs", "usage", proxy, model(stem))
    assert result["empty"] == 1 and result["lastUsage"]["total_tokens"] > 0 and result["created"]


@pytest.mark.parametrize(("case", "stem"), [("parse", "schema"), ("parse", "fence"), ("stream", "fence")])
def test_openai_node_parse(proxy: Proxy, model: Any, case: str, stem: str) -> None:
    parsed = node("openai_node.mjs", case, proxy, model(stem))["parsed"]
    assert isinstance(parsed["name"], str) and isinstance(parsed["age"], int)


@pytest.mark.parametrize("stem", ["schema", "fence"])
def test_openai_node_tools(proxy: Proxy, model: Any, stem: str) -> None:
    result = node("openai_node.mjs", "tools", proxy, model(stem))
    assert result["name"] == "get_weather" and set(result["parsed"]) == {"city", "unit"}


def test_openai_node_embeddings(proxy: Proxy, model: Any) -> None:
    result = node("openai_node.mjs", "embeddings", proxy, model("echo"))
    assert len(result["float"]) == 2 and all(len(v) == 8 for v in result["float"])
    for plain, packed in zip(result["float"], result["base64"], strict=True):
        assert packed == pytest.approx(plain, rel=1e-6)
        assert math.isclose(math.fsum(x * x for x in plain), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize(
    ("case", "stem"), [("generateText", "echo"), ("streamText", "echo"), ("streamText", "pii")]
)
def test_ai_sdk_text(proxy: Proxy, model: Any, case: str, stem: str) -> None:
    assert node("ai_sdk.mjs", case, proxy, model(stem)) == {"text": PROMPT, "finishReason": "stop"}


@pytest.mark.parametrize("stem", ["schema", "fence"])
def test_ai_sdk_generate_object(proxy: Proxy, model: Any, stem: str) -> None:
    obj = node("ai_sdk.mjs", "generateObject", proxy, model(stem))["object"]
    assert isinstance(obj["name"], str) and isinstance(obj["age"], int)
