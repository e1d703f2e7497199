"""`guardproxy mock-server` over real HTTP, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from proxy.mock import embed
from proxy.mock.server import build_server, create_mock_app, load_mock_options
from tests.servers import free_port

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "when": {"type": "string", "format": "date"},
        "temps": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 4},
    },
    "required": ["city", "when", "temps"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
    },
}
OPTIONS: dict[str, Any] = {
    "fast-json": {"behaviour": "static", "content": '{"ok": true}'},
    "echo": {"stream_chunk_chars": 5},
    "limited": {"behaviour": "error", "status": 429, "retry_after": 3},
    "down": {"behaviour": "error", "status": 503},
    "badkey": {"behaviour": "error", "status": 401},
    "cut": {"behaviour": "echo", "stream_cut": True, "stream_chunk_chars": 3},
    "inband": {"behaviour": "stream_error", "content": "partial answer here", "message": "upstream exploded"},
    "slow": {"behaviour": "echo", "latency_ms": 10_000},
    "paced": {"behaviour": "echo", "stream_chunk_chars": 1, "chunk_delay_ms": 200},
    "recovering": {
        "behaviour": "script",
        "script": [{"behaviour": "error", "status": 500}, {"behaviour": "schema"}],
    },
    "html": {"behaviour": "malformed", "body": "html"},
    "truncated": {"behaviour": "malformed", "body": "truncated"},
    "plain": {"behaviour": "malformed", "body": "wrong_content_type"},
    "wide": {"behaviour": "echo", "dimensions": 16},
}
MESSAGES = [{"role": "user", "content": "what is the weather like in Lisbon today?"}]


class MockServer:
    """The mock server app under uvicorn (built exactly as run_mock_server builds it) in a thread."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.app = create_mock_app(options)
        self.server = build_server(self.app, "127.0.0.1", free_port())
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.http = httpx.Client(timeout=10)

    def __enter__(self) -> MockServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "mock server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.config.port}"

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get(self.url + "/mock/stats").json()
        return data

    def wait_disconnects(self, name: str, count: int = 1) -> int:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen = int(self.stats()["disconnects"].get(name, 0))
            if seen >= count:
                return seen
            time.sleep(0.05)
        return int(self.stats()["disconnects"].get(name, 0))


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer(OPTIONS) as server:
        yield server


@pytest.fixture
def client(mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-mock", max_retries=0, timeout=10) as sdk:
        yield sdk


@pytest.fixture
def aclient(mock: MockServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="sk-mock", max_retries=0, timeout=10)


def test_sync_non_stream_static_label(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="fast-json", messages=MESSAGES)  # type: ignore[arg-type]
    assert response.object == "chat.completion" and response.id.startswith("chatcmpl-")
    assert response.model == "fast-json"
    assert response.choices[0].message.content == '{"ok": true}'
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.prompt_tokens == math.ceil(len(MESSAGES[0]["content"]) / 4)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_sync_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    ids = {c.id for c in chunks}
    assert len(ids) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == MESSAGES[0]["content"]
    contents = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contents) == math.ceil(len(text) / 5)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == math.ceil(len(text) / 4)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]


def test_stream_without_include_usage_has_no_usage_chunk(mock: MockServer) -> None:
    body = {"model": "echo", "messages": MESSAGES, "stream": True}
    with mock.http.stream("POST", mock.url + "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all("usage" not in e and e["choices"] for e in events)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"


def test_async_schema_and_async_stream(aclient: openai.AsyncOpenAI) -> None:
    async def main() -> tuple[Any, str]:
        fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
        async with aclient:  # its connections close on the loop that opened them
            response = await aclient.chat.completions.create(
                model="schema",
                messages=MESSAGES,  # type: ignore[arg-type]
                response_format=fmt,  # type: ignore[arg-type]
            )
            stream = await aclient.chat.completions.create(
                model="echo",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return response, text

    response, text = asyncio.run(main())
    value = json.loads(response.choices[0].message.content)
    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert list(validator.iter_errors(value)) == []
    assert text == MESSAGES[0]["content"]


def test_tool_calls_non_stream_and_stream(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": "schema",
        "messages": MESSAGES,
        "tools": [TOOL],
        "tool_choice": "required",
    }
    response = client.chat.completions.create(**kwargs)
    call = response.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert response.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup" and isinstance(json.loads(call.function.arguments)["id"], int)
    arguments = ""
    for chunk in client.chat.completions.create(**kwargs, stream=True):
        for delta in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            assert delta.index == 0
            arguments += delta.function.arguments or ""  # type: ignore[union-attr]
    assert arguments == call.function.arguments


def test_stats_and_reset(mock: MockServer, client: openai.OpenAI) -> None:
    assert mock.http.post(mock.url + "/mock/reset").json() == {"status": "ok"}
    assert mock.stats() == {"calls": {}, "disconnects": {}}
    for _ in range(3):
        client.chat.completions.create(model="fast-json", messages=MESSAGES)  # type: ignore[arg-type]
    client.chat.completions.create(model="echo", messages=MESSAGES)  # type: ignore[arg-type]
    assert mock.stats()["calls"] == {"fast-json": 3, "echo": 1}


def test_errors_carry_status_shape_and_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="limited", messages=MESSAGES)  # type: ignore[arg-type]
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body == {
        "message": "mock: rate limit exceeded, retry later",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model="down", messages=MESSAGES)  # type: ignore[arg-type]
    assert down.value.status_code == 503 and "retry-after" not in down.value.response.headers
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="badkey", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-label", messages=MESSAGES)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.RateLimitError):  # errors come before the stream starts
        client.chat.completions.create(model="limited", messages=MESSAGES, stream=True)  # type: ignore[arg-type]


def test_script_over_http(mock: MockServer, client: openai.OpenAI) -> None:
    mock.http.post(mock.url + "/mock/reset")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="recovering", messages=MESSAGES)  # type: ignore[arg-type]
    for _ in range(2):
        response = client.chat.completions.create(model="recovering", messages=MESSAGES)  # type: ignore[arg-type]
        assert response.choices[0].message.content
    assert mock.stats()["calls"]["recovering"] == 3


def test_stream_cut_raises_in_the_sdk(client: openai.OpenAI) -> None:
    seen = ""
    stream = client.chat.completions.create(model="cut", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            seen += chunk.choices[0].delta.content or ""
    assert seen and MESSAGES[0]["content"].startswith(seen) and seen != MESSAGES[0]["content"]
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="cut", messages=MESSAGES)  # type: ignore[arg-type]


def test_in_band_stream_error_raises_in_the_sdk_without_done(mock: MockServer, client: openai.OpenAI) -> None:
    seen = ""
    stream = client.chat.completions.create(model="inband", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.APIError, match="upstream exploded"):
        for chunk in stream:
            seen += chunk.choices[0].delta.content or ""
    assert seen and "partial answer here".startswith(seen) and seen != "partial answer here"
    body = {"model": "inband", "messages": MESSAGES, "stream": True}
    raw = mock.http.post(mock.url + "/v1/chat/completions", json=body).text
    assert raw.rstrip().endswith('"code":null}}') and "[DONE]" not in raw


def test_timeout_and_latency_disconnects_are_counted(mock: MockServer) -> None:
    mock.http.post(mock.url + "/mock/reset")
    quick = openai.OpenAI(base_url=mock.url + "/v1", api_key="sk", max_retries=0, timeout=0.3)
    for name in ("timeout", "slow"):
        with pytest.raises(openai.APITimeoutError):
            quick.chat.completions.create(model=name, messages=MESSAGES)  # type: ignore[arg-type]
        assert mock.wait_disconnects(name) == 1
    assert mock.stats()["calls"] == {"timeout": 1, "slow": 1}


def test_stall_sends_headers_then_never_finishes(mock: MockServer) -> None:
    body = {"model": "stall", "messages": MESSAGES}
    with httpx.Client(timeout=httpx.Timeout(5, read=0.3)) as http:
        with http.stream("POST", mock.url + "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200  # headers arrived
            with pytest.raises(httpx.ReadTimeout):
                response.read()
    quick = openai.OpenAI(base_url=mock.url + "/v1", api_key="sk", max_retries=0, timeout=0.3)
    got = ""
    with pytest.raises(openai.APITimeoutError):
        for chunk in quick.chat.completions.create(model="stall", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            got += chunk.choices[0].delta.content or ""
    assert got  # the first half arrived, then nothing


def test_client_leaving_mid_stream_is_counted(mock: MockServer) -> None:
    mock.http.post(mock.url + "/mock/reset")
    body = {"model": "paced", "messages": MESSAGES, "stream": True}
    with mock.http.stream("POST", mock.url + "/v1/chat/completions", json=body) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    assert mock.wait_disconnects("paced") == 1


def test_malformed_bodies(mock: MockServer, client: openai.OpenAI) -> None:
    url = mock.url + "/v1/chat/completions"
    html = mock.http.post(url, json={"model": "html", "messages": MESSAGES})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.text.startswith("<html>")
    truncated = mock.http.post(url, json={"model": "truncated", "messages": MESSAGES})
    assert truncated.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.text)
    plain = mock.http.post(url, json={"model": "plain", "messages": MESSAGES})
    assert plain.headers["content-type"].startswith("text/plain")
    assert json.loads(plain.text)["object"] == "chat.completion"
    assert mock.http.post(url, content=b"{not json").status_code == 400


def test_embeddings_float_and_base64(client: openai.OpenAI, mock: MockServer) -> None:
    default = client.embeddings.create(model="echo", input=["alpha", "beta", "alpha"])  # SDK asks for base64
    vectors = [d.embedding for d in default.data]
    assert all(len(v) == 8 and abs(sum(x * x for x in v) - 1) < 1e-5 for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert vectors[0] == pytest.approx(embed(["alpha"], 8)[0], abs=1e-6)
    wide = client.embeddings.create(model="wide", input="alpha", encoding_format="float")
    assert wide.data[0].embedding == embed(["alpha"], 16)[0]
    sized = mock.http.post(
        mock.url + "/v1/embeddings", json={"model": "echo", "input": "x", "dimensions": 4}
    ).json()
    assert len(sized["data"][0]["embedding"]) == 4
    raw = mock.http.post(
        mock.url + "/v1/embeddings", json={"model": "echo", "input": "x", "encoding_format": "base64"}
    )
    assert len(base64.b64decode(raw.json()["data"][0]["embedding"])) == 8 * 4
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="limited", input="x")


def test_models_lists_labels_and_behaviours(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"fast-json", "recovering", "echo", "schema", "broken-json"} <= set(ids)


def test_litellm_openai_path_reaches_the_mock_server(mock: MockServer) -> None:
    import litellm

    async def main() -> tuple[Any, Any]:
        common = {"api_base": mock.url + "/v1", "api_key": "sk-mock", "num_retries": 0, "max_retries": 0}
        ok = await litellm.acompletion(model="openai/fast-json", messages=MESSAGES, **common)
        with pytest.raises(litellm.RateLimitError) as limited:
            await litellm.acompletion(model="openai/limited", messages=MESSAGES, **common)
        return ok, limited.value

    ok, limited = asyncio.run(main())
    assert ok.choices[0].message.content == '{"ok": true}'
    assert limited.response.headers["retry-after"] == "3"


def test_load_mock_options_reports_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "mock.yaml"
    good.write_text("fast-json:\n  behaviour: static\n  content: hi\necho:\nflaky:\n  fault_rate: 0.1\n")
    assert load_mock_options(good) == {
        "fast-json": {"behaviour": "static", "content": "hi"},
        "echo": None,
        "flaky": {"fault_rate": 0.1},
    }
    assert load_mock_options(None) == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "ok:\n  behaviour: echo\nbroken:\n  behaviour: error\n  status: 418\nmystery:\n  content: x\n"
    )
    from proxy.yamlfile import ConfigError

    with pytest.raises(ConfigError) as info:
        load_mock_options(bad)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{bad}:5: broken.status: unknown value 418")
    assert lines[1].startswith(f"{bad}:6: mystery: unknown mock behaviour 'mystery'")


def test_run_mock_server_in_a_subprocess(tmp_path: Path) -> None:
    config = tmp_path / "mock.yaml"
    config.write_text("hello:\n  behaviour: static\n  content: from the subprocess\n")
    port = free_port()
    code = (
        "from pathlib import Path; from proxy.mock.server import run_mock_server; "
        f"run_mock_server('127.0.0.1', {port}, Path({str(config)!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    http = httpx.Client(timeout=10)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = {"model": "hello", "messages": MESSAGES}
                answer = http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body).json()
                break
            except httpx.ConnectError:
                assert process.poll() is None and time.monotonic() < deadline, "mock-server did not start"
                time.sleep(0.1)
        assert answer["choices"][0]["message"]["content"] == "from the subprocess"
    finally:
        http.close()
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert b"Traceback" not in stderr
