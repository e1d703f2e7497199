"""Issue 14, item 5: one tenant cannot cool a deployment for everyone.

Tenant B sends requests that are its own fault (content-part types the OpenAI schema does not define,
prompts the provider refuses with 400/404/405/413/422) while tenant A uses the same deployment: every A
request succeeds, every B request gets a 4xx, nothing is retried and the deployment never cools.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.content_parts import PART_TYPES
from proxy.errors import InvalidRequest
from proxy.settings import LimitSettings
from proxy.wire import parse_chat_request
from tests.helpers import metric_sum
from tests.hostile.recording_upstream import RecordingUpstream

KEYS = {"tenant-a": "sk-tenant-a-0001", "tenant-b": "sk-tenant-b-0002", "ops": "sk-ops-admin-0003"}

# part types OpenAI defines but not for that role, and types it does not define at all
UNKNOWN_PARTS = [
    ("user", {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}),
    ("user", {"type": "refusal", "refusal": "no"}),
    ("system", {"type": "image_url", "image_url": {"url": "https://example.com/i.png"}}),
    ("assistant", {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
    ("user", {"type": "image_url", "image_url": "not an object"}),
]
REFUSED_STATUSES = [400, 404, 405, 413, 422]


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    up = RecordingUpstream()
    up.server.start()
    yield up
    up.server.stop()


def _config(make_config: Any, upstream: RecordingUpstream, transport: str) -> Path:
    deployment = {
        "model": "openai/shared",
        "api_base": upstream.base,
        "api_key": "sk-up",
        "transport": transport,
    }
    keys = [{"name": n, "key": k, "models": ["*"], "admin": n == "ops"} for n, k in KEYS.items()]
    return make_config(
        {"shared": {"policy": "lenient", "deployments": [deployment]}},
        policies={"lenient": {"description": "no checks"}},
        auth={"keys": keys},
        retry={
            "attempts": 3,
            "initial_backoff": 0.01,
            "max_backoff": 0.02,
            "deadline": 20,
            "cooldown_failures": 2,
            "cooldown_seconds": 60,
        },
    )


def _hostile_bodies() -> list[dict[str, Any]]:
    """100 requests that are tenant B's own fault, half refused at parse time, half by the provider."""
    out = []
    for i in range(100):
        if i % 2:
            role, part = UNKNOWN_PARTS[i % len(UNKNOWN_PARTS)]
            content = [{"type": "text", "text": f"hostile {i}"}, part]
            messages = [{"role": role, "content": content}, {"role": "user", "content": "go"}]
        else:
            status = REFUSED_STATUSES[(i // 2) % len(REFUSED_STATUSES)]
            messages = [{"role": "user", "content": f"status:{status} hostile {i}"}]
        out.append({"model": "shared", "messages": messages})
    return out


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_hostile_tenant_never_cools_the_shared_deployment(make_config, start_proxy, upstream, transport):
    proxy = start_proxy(_config(make_config, upstream, transport))
    hostile = _hostile_bodies()
    cooled: list[float] = []
    stop = threading.Event()

    def watch() -> None:  # the cooldown gauge, sampled all along the attack
        with httpx.Client(timeout=30, headers={"authorization": f"Bearer {KEYS['ops']}"}) as http:
            while not stop.is_set():
                metrics = http.get(proxy.url + "/metrics").text
                cooled.append(metric_sum(metrics, "guardproxy_deployment_cooldown"))
                stop.wait(0.05)

    def send(tenant: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"authorization": f"Bearer {KEYS[tenant]}"}
        return httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)

    good = [
        {"model": "shared", "messages": [{"role": "user", "content": f"tenant a {i}"}]} for i in range(40)
    ]
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(8) as pool:
        b_answers = pool.map(lambda body: send("tenant-b", body), hostile)
        a_answers = pool.map(lambda body: send("tenant-a", body), good)
        b_answers, a_answers = list(b_answers), list(a_answers)
    stop.set()
    watcher.join(timeout=10)

    assert [r.status_code for r in a_answers] == [200] * len(good), [
        r.text for r in a_answers if r.status_code != 200
    ][:3]
    assert [r.json()["choices"][0]["message"]["content"] for r in a_answers] == [
        b["messages"][0]["content"] for b in good
    ]
    for body, answer in zip(hostile, b_answers, strict=True):
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json()["error"]["type"] == "invalid_request_error"
        if not isinstance(body["messages"][0]["content"], str):  # refused at parse time, naming the part
            assert answer.status_code == 400
            assert answer.json()["error"]["param"].startswith("messages[0].content[1]")
    # no unknown part reached the provider; each refused prompt was sent once (never retried by us;
    # litellm's OpenAI handler itself re-sends a 422 once, hoping to drop a named bad param)
    resent = 10 if transport == "litellm" else 0
    assert upstream.calls_with("hostile") == 50 + resent
    metrics = httpx.get(proxy.url + "/metrics", headers={"authorization": f"Bearer {KEYS['ops']}"}).text
    assert metric_sum(metrics, "guardproxy_retries_total") == 0
    assert metric_sum(metrics, "guardproxy_upstream_calls_total", result="upstream_rejected") == 50
    assert cooled and max(cooled) == 0 and metric_sum(metrics, "guardproxy_deployment_cooldown") == 0
    snapshot = httpx.get(proxy.url + "/ui/api/snapshot", headers={"authorization": f"Bearer {KEYS['ops']}"})
    rows = snapshot.json()["deployments"]
    assert all(row["errors"] == 0 for row in rows.values()), rows  # refusals are not the deployment's errors


@pytest.mark.parametrize("role", sorted(PART_TYPES))
@settings(max_examples=40, deadline=None)
@given(kind=st.text(min_size=0, max_size=20))
def test_only_the_schema_part_types_of_each_role_parse(role, kind):
    """Any part type outside the role's allow-list is a 400 naming `messages[i].content[j].type`."""
    part = {
        "type": kind,
        kind: "x"
        if kind in ("text", "refusal")
        else {"url": "u", "data": "d", "format": "wav", "file_id": "f"},
    }
    messages = [
        {"role": "user", "content": "first"},
        {"role": role, "content": [{"type": "text", "text": "t"}, part]},
    ]
    body = {"model": "m", "messages": messages}
    if kind in PART_TYPES[role]:
        parsed = parse_chat_request(body, LimitSettings())
        assert parsed.messages[1]["content"][1]["type"] == kind
    else:
        with pytest.raises(InvalidRequest) as refused:
            parse_chat_request(body, LimitSettings())
        assert refused.value.param == "messages[1].content[1].type"
