"""Streaming guardrails end to end (docs/reference.md section 4): buffer and passthrough, the official SDK,
three upstream paths (the in-process mock through litellm, the HTTP mock through `direct` and `litellm`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from proxy.mock.server import create_mock_app
from tests.conftest import REPO
from tests.servers import ServerThread

TRANSPORTS = ("inproc", "direct", "litellm")
SOME = ("inproc", "direct")  # where only the guard differs, not the upstream path
MODES = ("buffer", "passthrough")
NO_STORE = {"cache-control": "no-store"}

PROSE = (
    "Streaming answers travel in small pieces, and every piece is checked before it leaves the proxy. "
    "The client sees the same words it would have seen without streaming, only sooner. "
)
EMAIL = "john.doe@example.com"
# The address sits after more than the pii hold window (260 characters), so text is released before it.
MAIL_TEXT = PROSE * 2 + f"Write to {EMAIL} for the details. " + PROSE
LEAK_TEXT = PROSE + "Our kettles are made by Globex Corporation in Springfield. " + PROSE
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
                "additionalProperties": False,
            },
        },
    }
]


def call(arguments: str) -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}


# label -> mock options: served by the HTTP mock under that label and in-process as `mock/<behaviour>`.
MOCKS: dict[str, dict[str, Any]] = {
    "prose": {"behaviour": "static", "content": PROSE * 3, "stream_chunk_chars": 7},
    "leak": {"behaviour": "static", "content": LEAK_TEXT, "stream_chunk_chars": 3},
    "mail": {"behaviour": "static", "content": MAIL_TEXT, "stream_chunk_chars": 3},
    # the same answer paced: each chunk in a network read of its own (a stream relays one event per read)
    "mail-paced": {
        "behaviour": "static",
        "content": MAIL_TEXT,
        "stream_chunk_chars": 12,
        "chunk_delay_ms": 2,
    },
    "echo": {"behaviour": "echo", "stream_chunk_chars": 6},
    "mail-short": {"behaviour": "static", "content": f"{EMAIL} is the address.", "stream_chunk_chars": 3},
    "tool-ok": {"behaviour": "static", "tool_calls": [call('{"city": "Paris", "days": 2}')]},
    "tool-fixable": {
        "behaviour": "static",
        "tool_calls": [call('{"city": "Paris", "days": "2",}')],
        "stream_chunk_chars": 4,
    },
    "tool-bad": {
        "behaviour": "static",
        "tool_calls": [call('{"town": "Paris"}')],
        "stream_chunk_chars": 4,
    },
    "tool-bad-talk": {
        "behaviour": "static",
        "content": PROSE,
        "tool_calls": [call('{"town": "Paris"}')],
        "stream_chunk_chars": 9,
    },
}
# alias stem -> (mock label, policy per mode)
ALIASES: dict[str, tuple[str, dict[str, str]]] = {
    "prose": ("prose", {"buffer": "buf-plain", "passthrough": "pt-plain"}),
    "echo": ("echo", {"buffer": "buf-plain", "passthrough": "pt-plain"}),
    "leak": ("leak", {"passthrough": "pt-phrase"}),
    "leak-redact": ("leak", {"passthrough": "pt-phrase-redact"}),
    "mail": ("mail", {"buffer": "buf-pii", "passthrough": "pt-pii"}),
    "mail-paced": ("mail-paced", {"passthrough": "pt-pii"}),
    "mail-reject": ("mail", {"passthrough": "pt-pii-reject"}),
    "mail-short-reject": ("mail-short", {"passthrough": "pt-pii-reject"}),
    "tool-ok": ("tool-ok", {"buffer": "buf-tools", "passthrough": "pt-tools"}),
    "tool-fixable": ("tool-fixable", {"buffer": "buf-tools", "passthrough": "pt-tools"}),
    "tool-bad": ("tool-bad", {"buffer": "buf-tools", "passthrough": "pt-tools"}),
    "tool-bad-talk": ("tool-bad-talk", {"passthrough": "pt-tools"}),
    "tool-watch": ("tool-bad", {"passthrough": "pt-tools-watch"}),
}
PHRASES = {"type": "phrases", "deny": ["Globex Corporation"]}
PII = {"type": "pii", "entities": ["email"], "on_fail": "redact"}
POLICIES: dict[str, dict[str, Any]] = {
    "buf-plain": {"stream": "buffer"},
    "pt-plain": {"stream": "passthrough"},
    "pt-phrase": {"stream": "passthrough", "validators": [PHRASES]},
    "pt-phrase-redact": {"stream": "passthrough", "validators": [{**PHRASES, "on_fail": "redact"}]},
    "buf-pii": {"stream": "buffer", "validators": [PII]},
    "pt-pii": {"stream": "passthrough", "validators": [PII]},
    "pt-pii-reject": {"stream": "passthrough", "validators": [{**PII, "on_fail": "reject"}]},
    "buf-tools": {
        "stream": "buffer",
        "validators": [{"type": "tool_calls"}],
        "on_fail": ["repair", "reject"],
    },
    "pt-tools": {"stream": "passthrough", "validators": [{"type": "tool_calls"}]},
    "pt-tools-watch": {"stream": "passthrough", "mode": "monitor", "validators": [{"type": "tool_calls"}]},
}


def deployment(label: str, transport: str, mock_url: str, mocks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The deployment serving mock `label` over `transport`."""
    if transport == "inproc":
        options = dict(mocks[label])
        return {"model": f"mock/{options.pop('behaviour')}", "mock": options}
    return {
        "model": f"openai/{label}",
        "api_base": mock_url + "/v1",
        "api_key": "sk-mock",
        "transport": transport,
    }


def write_config(
    folder: Path,
    models: dict[str, Any],
    policies: dict[str, dict[str, Any]],
    **sections: Any,
) -> Path:
    """config.yaml plus policies under `folder` (the shipped policies copied in)."""
    pol = folder / "policies"
    pol.mkdir(parents=True, exist_ok=True)
    for shipped in (REPO / "policies").glob("*.yaml"):
        (pol / shipped.name).write_bytes(shipped.read_bytes())
    for name, spec in policies.items():
        (pol / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **spec}, sort_keys=False))
    config = {
        "models": models,
        "cache": {"backend": "disk", "path": str(folder / "cache")},
        "retry": {"initial_backoff": 0.01, "max_backoff": 0.05, "deadline": 20},
        "logging": {"audit_path": str(folder / "audit.jsonl")},
        "policies_dir": str(pol),
        **sections,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alias(stem: str, mode: str, transport: str) -> str:
    return f"{stem}-{mode}-{transport}"


@pytest.fixture(scope="module")
def mock_server() -> Iterator[ServerThread]:
    server = ServerThread(create_mock_app(MOCKS)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, mock_server: ServerThread) -> Iterator[ServerThread]:
    from proxy.app import create_app

    models = {
        alias(stem, mode, t): {
            "policy": policy,
            "deployments": [deployment(label, t, mock_server.url, MOCKS)],
        }
        for stem, (label, policies) in ALIASES.items()
        for mode, policy in policies.items()
        for t in TRANSPORTS
    }
    server = ServerThread(create_app(write_config(tmp_path_factory.mktemp("stream"), models, POLICIES)))
    server.start()
    yield server
    server.stop()


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)


def raw_stream(
    server: ServerThread,
    model: str,
    *,
    content: str = "hi",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[httpx.Response, bytes]:
    """POST a streamed request; the response and every byte of its body."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": True, **extra}
    with httpx.stream(
        "POST",
        server.url + "/v1/chat/completions",
        json=body,
        headers=NO_STORE if headers is None else headers,
        timeout=30,
    ) as response:
        data = b"".join(response.iter_bytes())
    return response, data


def events(data: bytes) -> list[Any]:
    """The `data:` payloads of an SSE body: dicts, or the string "[DONE]"."""
    out: list[Any] = []
    for block in data.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                payload = line[len("data: ") :]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def text_of(payloads: list[Any]) -> str:
    return "".join(
        (c["choices"][0]["delta"].get("content") or "")
        for c in payloads
        if isinstance(c, dict) and c.get("choices")
    )


def sdk_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- content --------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", MODES)
def test_stream_content_equals_non_stream(proxy, mode, transport):
    client = sdk(proxy)
    model = alias("prose", mode, transport)
    messages = [{"role": "user", "content": "tell me about streaming"}]
    whole = client.chat.completions.create(model=model, messages=messages, extra_headers=NO_STORE)
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=messages, stream=True, extra_headers=NO_STORE
    ) as response:
        expected_outcome = "streaming" if mode == "passthrough" else "pass"
        assert response.headers["x-guardproxy-outcome"] == expected_outcome
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = list(response.parse())
    assert sdk_text(chunks) == whole.choices[0].message.content == PROSE * 3
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert len({c.id for c in chunks}) == 1 and len({c.model for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    if mode == "passthrough":
        verdict = chunks[-1].model_extra["guardproxy"]  # on the finish chunk: no empty-choices chunk
        assert chunks[-1].choices and verdict.pop("total_tokens") > 0
        assert verdict == {"outcome": "pass", "violations": [], "attempts": 1}


# --- passthrough guard: nothing violating leaves the proxy ------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_phrase_split_across_chunks_is_caught(proxy, transport):
    model = alias("leak", "passthrough", transport)
    response, data = raw_stream(proxy, model)
    assert response.status_code == 200
    streamed, _, error_event = data.rpartition(b'data: {"error"')
    assert b"Globex" not in streamed and b"Corporation" not in streamed  # only the error names the phrase
    payloads = events(data)
    assert "[DONE]" not in payloads
    assert payloads[-1]["error"]["code"] == "output_validation_failed"
    assert payloads[-1]["error"]["violations"][0]["validator"] == "phrases"
    sent = text_of(payloads)
    assert sent and LEAK_TEXT.startswith(sent)  # the clean prefix streamed before the phrase arrived
    assert "Globex" not in sent
    assert not any(c["choices"][0]["finish_reason"] for c in payloads[:-1] if c.get("choices"))
    with pytest.raises(openai.APIError) as caught:
        list(
            sdk(proxy).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=NO_STORE
            )
        )
    assert "violated the policy" in caught.value.message
    metrics = httpx.get(proxy.url + "/metrics").text
    assert 'guardproxy_violations_total{policy="pt-phrase",validator="phrases"}' in metrics


@pytest.mark.parametrize("transport", SOME)
def test_phrase_redacted_in_place(proxy, transport):
    response, data = raw_stream(proxy, alias("leak-redact", "passthrough", transport))
    assert b"Globex" not in data.partition(b'"guardproxy"')[0]  # only the verdict names the policy's phrase
    payloads = events(data)
    assert payloads[-1] == "[DONE]"
    assert text_of(payloads) == LEAK_TEXT.replace("Globex Corporation", "[REDACTED]")
    assert payloads[-2]["guardproxy"]["outcome"] == "redacted"


@pytest.mark.parametrize(
    ("mode", "transport"), [*(("passthrough", t) for t in TRANSPORTS), ("buffer", "direct")]
)
def test_pii_redacted_across_chunk_boundaries(proxy, mode, transport):
    client = sdk(proxy)
    model = alias("mail", mode, transport)
    response, data = raw_stream(proxy, model)
    assert response.status_code == 200
    assert EMAIL.encode() not in data and b"john.doe" not in data and b"example.com" not in data
    payloads = events(data)
    assert payloads[-1] == "[DONE]"
    expected = MAIL_TEXT.replace(EMAIL, "[EMAIL]")
    assert text_of(payloads) == expected
    chunks = list(
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=NO_STORE
        )
    )
    assert sdk_text(chunks) == expected
    if mode == "passthrough":
        assert chunks[-1].model_extra["guardproxy"]["outcome"] == "redacted"
        _, paced = raw_stream(proxy, alias("mail-paced", mode, transport))
        payloads = events(paced)
        assert EMAIL.encode() not in paced and text_of(payloads) == expected
        assert len([p for p in payloads if isinstance(p, dict) and p.get("choices")]) > 10  # really streamed
    else:
        assert response.headers["x-guardproxy-outcome"] == "redacted"


@pytest.mark.parametrize("transport", SOME)
def test_reject_ends_with_error_event_and_no_done(proxy, transport):
    model = alias("mail-reject", "passthrough", transport)
    response, data = raw_stream(proxy, model)
    assert response.status_code == 200 and response.headers["x-guardproxy-outcome"] == "streaming"
    assert b"john.doe" not in data and b"[DONE]" not in data
    payloads = events(data)
    error = payloads[-1]["error"]
    assert error["type"] == "guardrail_violation" and error["code"] == "output_validation_failed"
    assert error["violations"] == [
        {"validator": "pii", "message": "the output contains an email address", "path": None}
    ]
    assert EMAIL not in json.dumps(error)
    with pytest.raises(openai.APIError):
        list(
            sdk(proxy).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=NO_STORE
            )
        )


@pytest.mark.parametrize("transport", ["direct"])
def test_violation_before_anything_was_sent_is_a_plain_422(proxy, transport):
    """The e-mail is the first word, held until complete: nothing was sent yet, so an ordinary 422."""
    model = alias("mail-short-reject", "passthrough", transport)
    response, data = raw_stream(proxy, model)
    assert response.status_code == 422 and b"john.doe" not in data
    assert response.headers["x-guardproxy-outcome"] == "rejected"
    assert json.loads(data)["error"]["violations"][0]["validator"] == "pii"
    with pytest.raises(openai.UnprocessableEntityError):
        sdk(proxy).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=NO_STORE
        )


def test_whole_output_verdict_at_the_end(proxy):
    """Passthrough streams the text; `json` (brought in by response_format) can only judge it at the end."""
    _, data = raw_stream(
        proxy, alias("prose", "passthrough", "direct"), response_format={"type": "json_object"}
    )
    payloads = events(data)
    assert text_of(payloads) == PROSE * 3 and b"[DONE]" not in data
    assert all(p["choices"] for p in payloads[:-1])  # no empty-choices chunk without include_usage
    error = payloads[-1]["error"]  # the verdict rides on the error event
    assert error["code"] == "output_validation_failed" and error["guardproxy"]["outcome"] == "rejected"
    assert error["guardproxy"]["violations"][0]["validator"] == "json"


# --- usage ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", MODES)
def test_usage_chunk(proxy, mode, transport):
    model = alias("prose", mode, transport)
    chunks = list(
        sdk(proxy).chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "count me"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=NO_STORE,
        )
    )
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens > 0
    _, data = raw_stream(proxy, model, stream_options={"include_usage": True})
    payloads = events(data)
    assert payloads[-1] == "[DONE]"
    assert all("usage" in p and p["usage"] is None for p in payloads[:-2])
    assert payloads[-2]["choices"] == [] and payloads[-2]["usage"]["total_tokens"] > 0
    _, plain = raw_stream(proxy, model)
    assert all(p.get("usage") is None for p in events(plain)[:-1])  # not asked: no usage anywhere


# --- tool calls ----------------------------------------------------------------------------------


def tool_stream(proxy: ServerThread, model: str) -> tuple[httpx.Response, list[Any]]:
    response, data = raw_stream(proxy, model, tools=TOOLS)
    return response, events(data)


def tool_calls_of(payloads: list[Any]) -> list[dict[str, Any]]:
    """Tool-call deltas assembled per index, as a client would."""
    calls: dict[int, dict[str, Any]] = {}
    for p in payloads:
        if not isinstance(p, dict) or not p.get("choices"):
            continue
        for delta in p["choices"][0]["delta"].get("tool_calls") or ():
            slot = calls.setdefault(delta["index"], {"id": None, "name": "", "arguments": ""})
            slot["id"] = delta.get("id") or slot["id"]
            fn = delta.get("function") or {}
            slot["name"] += fn.get("name") or ""
            slot["arguments"] += fn.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", MODES)
def test_tool_call_deltas_assembled(proxy, mode, transport):
    response, payloads = tool_stream(proxy, alias("tool-ok", mode, transport))
    assert payloads[-1] == "[DONE]"
    [assembled] = tool_calls_of(payloads)
    assert assembled["name"] == "get_weather" and json.loads(assembled["arguments"]) == {
        "city": "Paris",
        "days": 2,
    }
    finishes = [p["choices"][0]["finish_reason"] for p in payloads[:-1] if p.get("choices")]
    assert [f for f in finishes if f] == ["tool_calls"]
    chunks = list(
        sdk(proxy).chat.completions.create(
            model=alias("tool-ok", mode, transport),
            messages=[{"role": "user", "content": "weather?"}],
            tools=TOOLS,
            stream=True,
            extra_headers=NO_STORE,
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or ())]
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == assembled["arguments"]


@pytest.mark.parametrize(
    ("mode", "transport"), [("buffer", "direct"), ("passthrough", "direct"), ("passthrough", "inproc")]
)
def test_invalid_tool_args_repaired_before_release(proxy, mode, transport):
    response, payloads = tool_stream(proxy, alias("tool-fixable", mode, transport))
    assert payloads[-1] == "[DONE]"
    [assembled] = tool_calls_of(payloads)
    assert json.loads(assembled["arguments"]) == {"city": "Paris", "days": 2}  # "2" coerced, comma dropped
    if mode == "buffer":
        assert response.headers["x-guardproxy-outcome"] == "repaired"
    else:
        assert payloads[-2]["guardproxy"]["outcome"] == "repaired"


@pytest.mark.parametrize(
    ("mode", "transport"), [("buffer", "direct"), ("passthrough", "direct"), ("passthrough", "inproc")]
)
def test_invalid_tool_args_rejected_before_release(proxy, mode, transport):
    """A tool-call-only answer is held whole in both modes: nothing was sent, so a plain 422."""
    response, data = raw_stream(proxy, alias("tool-bad", mode, transport), tools=TOOLS)
    assert response.status_code == 422 and b"Paris" not in data
    error = json.loads(data)["error"]
    assert error["code"] == "output_validation_failed"
    assert {v["validator"] for v in error["violations"]} == {"tool_calls"}
    with pytest.raises(openai.UnprocessableEntityError):
        sdk(proxy).chat.completions.create(
            model=alias("tool-bad", mode, transport),
            messages=[{"role": "user", "content": "weather?"}],
            tools=TOOLS,
            stream=True,
            extra_headers=NO_STORE,
        )


@pytest.mark.parametrize("transport", SOME)
def test_invalid_tool_call_after_text_ends_stream_with_verdict(proxy, transport):
    """Passthrough: text streamed, then the held tool call fails: error event with the verdict, no [DONE]."""
    _, data = raw_stream(proxy, alias("tool-bad-talk", "passthrough", transport), tools=TOOLS)
    payloads = events(data)
    assert text_of(payloads) == PROSE and b"Paris" not in data and b"[DONE]" not in data
    assert not tool_calls_of(payloads)
    assert not any(p["choices"][0]["finish_reason"] for p in payloads if p.get("choices"))
    assert all(p["choices"] for p in payloads[:-1])  # no empty-choices chunk without include_usage
    error = payloads[-1]["error"]
    verdict = error["guardproxy"]  # the verdict rides on the error event
    assert verdict["outcome"] == "rejected" and verdict["violations"][0]["validator"] == "tool_calls"
    assert error["code"] == "output_validation_failed"


@pytest.mark.parametrize("transport", ["direct"])
def test_monitor_mode_releases_invalid_tool_call_flagged(proxy, transport):
    _, payloads = tool_stream(proxy, alias("tool-watch", "passthrough", transport))
    assert payloads[-1] == "[DONE]"
    [assembled] = tool_calls_of(payloads)
    assert json.loads(assembled["arguments"]) == {"town": "Paris"}
    verdict = payloads[-2]["guardproxy"]
    assert verdict["outcome"] == "flagged"
    assert {v["validator"] for v in verdict["violations"]} == {"tool_calls"}


# --- concurrency ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_twenty_concurrent_streams_never_mix(proxy, mode):
    async def one(client: openai.AsyncOpenAI, i: int, transport: str) -> tuple[str, str, list[Any]]:
        text = f"stream number {i:02d} says " + " ".join(f"w{i}x{j}" for j in range(30))
        stream = await client.chat.completions.create(
            model=alias("echo", mode, transport),
            messages=[{"role": "user", "content": text}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=NO_STORE,
        )
        return text, transport, [c async for c in stream]

    async def main() -> list[tuple[str, str, list[Any]]]:
        client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
        try:
            return await asyncio.gather(*[one(client, i, TRANSPORTS[i % 3]) for i in range(20)])
        finally:
            await client.close()

    results = asyncio.run(main())
    ids = set()
    for text, _, chunks in results:
        assert sdk_text(chunks) == text
        assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
        assert len({c.model for c in chunks}) == 1
        assert chunks[-1].usage is not None
        ids.add(chunks[0].id)
    assert len(ids) == 20


# --- cache ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_streamed_answer_cached_then_replayed_with_usage(proxy, mode):
    model = alias("mail", mode, "direct")
    content = f"cache me please ({mode}, {time.time_ns()})"
    expected = MAIL_TEXT.replace(EMAIL, "[EMAIL]")
    first, data = raw_stream(proxy, model, content=content, headers={})
    assert first.headers["x-guardproxy-cache"] == "miss" and text_of(events(data)) == expected
    with sdk(proxy).chat.completions.with_streaming_response.create(
        model=model,
        messages=[{"role": "user", "content": content}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-guardproxy-cache"] == "hit"
        assert response.headers["x-guardproxy-attempts"] == "0"
        assert response.headers["x-guardproxy-outcome"] == "redacted"
        chunks = list(response.parse())
    assert sdk_text(chunks) == expected and EMAIL not in sdk_text(chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    hit = sdk(proxy).chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    assert hit.choices[0].message.content == expected  # the same entry serves non-stream requests
