"""Issue 14, item 9: a deployment's `params` override the client's fields, on both transports.

A client must not raise the operator's `max_tokens`, turn on `store` or buy a pricier `service_tier`;
the loopback upstream records the body it actually received.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.recording_upstream import RecordingUpstream

OPERATOR = {"max_tokens": 256, "store": False, "service_tier": "default", "temperature": 0.1}
CLIENT = {"max_tokens": 900000, "store": True, "service_tier": "priority", "temperature": 1.9}


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    up = RecordingUpstream()
    up.server.start()
    yield up
    up.server.stop()


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_deployment_params_win_over_the_client(make_config, start_proxy, client_for, upstream, transport):
    deployment = {
        "model": "openai/pinned",
        "api_base": upstream.base,
        "api_key": "sk-up",
        "transport": transport,
        # the transport's own fields are not settings: params cannot redirect the conversation or stream
        "params": {**OPERATOR, "messages": [{"role": "user", "content": "operator"}], "stream": True},
    }
    proxy = start_proxy(make_config({"pinned": {"deployments": [deployment]}}))
    answer = client_for(proxy).chat.completions.create(
        model="pinned", messages=[{"role": "user", "content": "client prompt"}], **CLIENT
    )
    assert answer.choices[0].message.content == "client prompt"
    (sent,) = upstream.bodies
    assert {k: sent.get(k) for k in OPERATOR} == OPERATOR, sent
    assert sent["messages"] == [{"role": "user", "content": "client prompt"}] and not sent.get("stream")


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_client_fields_the_operator_left_open_still_pass(
    make_config, start_proxy, client_for, upstream, transport
):
    deployment = {
        "model": "openai/open",
        "api_base": upstream.base,
        "transport": transport,
        "params": {"seed": 7},
    }
    proxy = start_proxy(make_config({"open": {"deployments": [deployment]}}))
    client_for(proxy).chat.completions.create(
        model="open", messages=[{"role": "user", "content": "hi"}], max_tokens=50, seed=1
    )
    (sent,) = upstream.bodies
    assert sent["max_tokens"] == 50 and sent["seed"] == 7
