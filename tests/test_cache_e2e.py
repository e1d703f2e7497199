"""The cache through the real server: key stability and sensitivity, tenant scope, policy edits.

The upstream is the HTTP mock server (`openai/<label>` deployments with `api_base`), so every upstream
call is counted by `/mock/stats` and a hit is proven by that count standing still.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ask, post
from tests.servers import ServerThread
from tests.servers import mock_calls as calls

MOCK = {"echo": None, "count": {"behaviour": "script", "script": [{"behaviour": "echo"}]}}
KEYS = [
    {"name": "team-a", "key": "sk-cache-team-a-0001", "models": ["*"]},
    {"name": "team-b", "key": "sk-cache-team-b-0002", "models": ["*"]},
]


def net(upstream: ServerThread, label: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"model": f"openai/{label}", "api_base": upstream.url + "/v1", "api_key": "sk-up", **extra}


@pytest.fixture
def proxy(make_config: Callable[..., Path], start_proxy: Callable[..., ServerThread], upstream: ServerThread):
    return start_proxy(
        make_config(
            {
                "echo": {"deployments": [net(upstream)]},
                "echo-twin": {"deployments": [net(upstream)]},
                "echo-chain": {"deployments": [net(upstream), net(upstream, "count")]},
            }
        )
    )


def test_equivalent_requests_share_one_key_and_one_upstream_call(http, proxy, upstream, client_for):
    base = ask('{"q": "stable"}', temperature=1, stop=["zz"], max_tokens=50)
    first = post(http, proxy, base)
    assert first.status_code == 200, first.text
    assert first.headers["x-guardproxy-cache"] == "miss" and first.headers["x-guardproxy-attempts"] == "1"
    key = first.headers["x-guardproxy-cache-key"]
    assert len(key) == 64 and int(key, 16) >= 0
    reordered = (
        '{"max_tokens": 50, "stop": ["zz"], "temperature": 1,'
        ' "messages": [{"content": "{\\"q\\": \\"stable\\"}", "role": "user"}], "model": "echo"}'
    )
    variants: list[dict[str, Any] | str] = [
        reordered,
        {**base, "temperature": 1.0},
        {**base, "stop": "zz"},
        {**base, "n": 1, "seed": None, "top_p": None},
        {**base, "user": "alice", "metadata": {"trace": "x"}, "store": False},
        {**base, "api_base": "http://attacker.invalid", "mock_response": "evil"},  # dropped, never keyed
    ]
    for variant in variants:
        again = post(http, proxy, variant)
        assert again.status_code == 200, again.text
        assert again.headers["x-guardproxy-cache-key"] == key, variant
        assert again.headers["x-guardproxy-cache"] == "hit", variant
        assert again.headers["x-guardproxy-attempts"] == "0"
        assert again.headers["x-guardproxy-deployment"] == first.headers["x-guardproxy-deployment"]
        assert again.headers["x-guardproxy-outcome"] == first.headers["x-guardproxy-outcome"]
        assert again.json() == first.json()
    sdk = client_for(proxy).chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "user", "content": '{"q": "stable"}'}],
        max_tokens=50,
        stop="zz",
        temperature=1.0,
        user="bob",
    )
    assert sdk.headers["x-guardproxy-cache"] == "hit" and sdk.headers["x-guardproxy-cache-key"] == key
    assert sdk.parse().choices[0].message.content == '{"q": "stable"}'
    assert calls(http, upstream) == 1


TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
OUTPUT_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("messages: other text", {"messages": [{"role": "user", "content": '{"q": "other"}'}]}),
    (
        "messages: a system message",
        {"messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": '{"q": "k"}'}]},
    ),
    ("tools", {"tools": [TOOL]}),
    ("tool_choice", {"tools": [TOOL], "tool_choice": "none"}),
    ("parallel_tool_calls", {"tools": [TOOL], "parallel_tool_calls": False}),
    ("response_format", {"response_format": {"type": "json_object"}}),
    ("temperature", {"temperature": 0.5}),
    ("top_p", {"top_p": 0.9}),
    ("max_tokens", {"max_tokens": 51}),
    ("max_completion_tokens", {"max_completion_tokens": 50}),
    ("seed", {"seed": 7}),
    ("stop", {"stop": ["yy"]}),
    ("n", {"n": 2}),
    ("presence_penalty", {"presence_penalty": 0.5}),
    ("frequency_penalty", {"frequency_penalty": 0.5}),
    ("logit_bias", {"logit_bias": {"50256": -100}}),
    ("logprobs", {"logprobs": True}),
    ("top_logprobs", {"logprobs": True, "top_logprobs": 2}),
    ("reasoning_effort", {"reasoning_effort": "low"}),
    ("alias", {"model": "echo-twin"}),
    ("deployment chain", {"model": "echo-chain"}),
]


def test_each_output_relevant_field_gets_its_own_entry(http, proxy, upstream):
    base = ask('{"q": "k"}', max_tokens=50)
    first = post(http, proxy, base)
    assert first.status_code == 200 and first.headers["x-guardproxy-cache"] == "miss"
    keys = {first.headers["x-guardproxy-cache-key"]: "base"}
    for name, change in OUTPUT_FIELDS:
        r = post(http, proxy, {**base, **change})
        assert r.status_code == 200, (name, r.text)
        assert r.headers["x-guardproxy-cache"] == "miss", name
        key = r.headers["x-guardproxy-cache-key"]
        assert key not in keys, f"{name} shares a key with {keys.get(key)}"
        keys[key] = name
        assert post(http, proxy, {**base, **change}).headers["x-guardproxy-cache"] == "hit", name
    assert calls(http, upstream) == len(OUTPUT_FIELDS) + 1


@pytest.mark.parametrize("scope", ["key", "global"])
def test_tenant_scope(http, make_config, start_proxy, upstream, client_for, tmp_path, scope):
    cache = {"backend": "disk", "path": str(tmp_path / "cache"), "scope": scope}
    proxy = start_proxy(
        make_config({"echo": {"deployments": [net(upstream)]}}, auth={"keys": KEYS}, cache=cache)
    )
    team_a, team_b = (client_for(proxy, key=k["key"]).chat.completions.with_raw_response for k in KEYS)
    messages = [{"role": "user", "content": "shared question"}]
    a1, a2 = (team_a.create(model="echo", messages=messages) for _ in range(2))
    b1, b2 = (team_b.create(model="echo", messages=messages) for _ in range(2))
    assert [r.headers["x-guardproxy-cache"] for r in (a1, a2)] == ["miss", "hit"]
    key_a, key_b = a1.headers["x-guardproxy-cache-key"], b1.headers["x-guardproxy-cache-key"]
    assert b2.headers["x-guardproxy-cache"] == "hit" and b2.headers["x-guardproxy-cache-key"] == key_b
    if scope == "key":
        assert b1.headers["x-guardproxy-cache"] == "miss" and key_a != key_b
        assert calls(http, upstream) == 2
    else:
        assert b1.headers["x-guardproxy-cache"] == "hit" and key_a == key_b
        assert b1.parse().id == a1.parse().id  # team B got team A's stored answer
        assert calls(http, upstream) == 1
    wrong = post(http, proxy, ask("shared question"), key="sk-cache-team-a-0001x")
    assert wrong.status_code == 401 and "x-guardproxy-cache" not in wrong.headers


def test_editing_the_policy_file_invalidates_its_entries(http, make_config, start_proxy, upstream):
    config = make_config(
        {"echo": {"policy": "mine", "deployments": [net(upstream)]}}, policies={"mine": {"description": "v1"}}
    )
    policy_file = config.parent / "policies" / "mine.yaml"

    def run_twice() -> list[httpx.Response]:
        server = start_proxy(config)
        try:
            return [post(http, server, ask("policy bound")) for _ in range(2)]
        finally:
            server.stop()

    first, second = run_twice()
    assert [first.headers["x-guardproxy-cache"], second.headers["x-guardproxy-cache"]] == ["miss", "hit"]
    key = first.headers["x-guardproxy-cache-key"]
    restarted = run_twice()  # a new app on the same cache directory, policy untouched: still a hit
    assert [r.headers["x-guardproxy-cache"] for r in restarted] == ["hit", "hit"]
    assert restarted[0].headers["x-guardproxy-cache-key"] == key
    policy_file.write_text(policy_file.read_text().replace("v1", "v2"))
    edited = run_twice()
    assert [r.headers["x-guardproxy-cache"] for r in edited] == ["miss", "hit"]
    assert edited[0].headers["x-guardproxy-cache-key"] != key
    assert calls(http, upstream) == 2


def test_a_policy_edited_while_serving_invalidates_after_the_reload(http, make_config, start_proxy, upstream):
    config = make_config(
        {"echo": {"policy": "mine", "deployments": [net(upstream)]}}, policies={"mine": {"description": "v1"}}
    )
    server = start_proxy(config, reload_interval=0.1)
    first = post(http, server, ask("live edit"))
    assert [
        first.headers["x-guardproxy-cache"],
        post(http, server, ask("live edit")).headers["x-guardproxy-cache"],
    ] == [
        "miss",
        "hit",
    ]
    policy_file = config.parent / "policies" / "mine.yaml"
    policy_file.write_text(policy_file.read_text().replace("v1", "v2"))
    deadline = time.monotonic() + 10
    while (r := post(http, server, ask("live edit"))).headers["x-guardproxy-cache-key"] == first.headers[
        "x-guardproxy-cache-key"
    ]:
        assert r.headers["x-guardproxy-cache"] == "hit"
        assert time.monotonic() < deadline, "the edited policy was never picked up"
        time.sleep(0.05)
    assert r.headers["x-guardproxy-cache"] == "miss" and calls(http, upstream) == 2


def test_editing_a_schema_file_the_policy_uses_invalidates_its_entries(
    http, make_config, start_proxy, upstream
):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    config = make_config(
        {"echo": {"policy": "shaped", "deployments": [net(upstream)]}},
        policies={"shaped": {"validators": [{"type": "json_schema", "schema": "person.json"}]}},
    )
    schema_file = config.parent / "policies" / "person.json"
    schema_file.write_text(json.dumps(schema))
    body = ask('{"name": "Ada"}')
    server = start_proxy(config)
    first, second = post(http, server, body), post(http, server, body)
    server.stop()
    assert first.status_code == 200, first.text
    assert [first.headers["x-guardproxy-cache"], second.headers["x-guardproxy-cache"]] == ["miss", "hit"]
    schema_file.write_text(json.dumps({**schema, "required": ["name", "email"]}))  # the old answer is invalid
    server = start_proxy(config)
    after = post(http, server, body)
    assert after.headers["x-guardproxy-cache"] == "miss"
    assert after.headers["x-guardproxy-cache-key"] != first.headers["x-guardproxy-cache-key"]
    assert after.status_code == 422 and after.json()["error"]["code"] == "output_validation_failed"
