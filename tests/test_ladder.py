"""Each rung of the escalation ladder, through the real server and the in-process mock provider."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from tests.helpers import ask, post

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
RF = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
MISSING = {"behaviour": "broken-json", "defect": "missing_required"}


def extract(model, content="extract a person"):
    return ask(content, model, response_format=RF)


def valid(response):
    data = json.loads(response.json()["choices"][0]["message"]["content"])
    jsonschema.validate(data, SCHEMA)
    return data


@pytest.fixture
def ladder_proxy(make_config, start_proxy):
    script = lambda *steps: {"model": "mock/script", "mock": {"script": list(steps)}}  # noqa: E731
    return start_proxy(
        make_config(
            {
                "fence": {"deployments": [{"model": "mock/broken-json", "mock": {"defect": "fence"}}]},
                "trailing": {
                    "deployments": [{"model": "mock/broken-json", "mock": {"defect": "trailing_comma"}}]
                },
                "types": {"deployments": [{"model": "mock/broken-json", "mock": {"defect": "wrong_types"}}]},
                "extra": {"deployments": [{"model": "mock/broken-json", "mock": {"defect": "extra_fields"}}]},
                "reask": {"deployments": [script(MISSING, {"behaviour": "schema"})]},
                "fallback": {
                    "policy": "one-reask",
                    "deployments": [script(MISSING), {"model": "mock/schema"}],
                },
                "hopeless": {"deployments": [script(MISSING), script(MISSING)]},
                "capped": {"policy": "capped", "deployments": [script(MISSING), {"model": "mock/schema"}]},
                "budget": {"policy": "budget", "deployments": [script(MISSING), {"model": "mock/schema"}]},
                "monitor": {"policy": "watch", "deployments": [script(MISSING)]},
                "retry": {
                    "deployments": [script({"behaviour": "error", "status": 500}, {"behaviour": "schema"})]
                },
                "noreask": {
                    "policy": "repair-only",
                    "deployments": [script(MISSING, {"behaviour": "schema"})],
                },
            },
            policies={
                "one-reask": {"reask": {"max": 1}},
                "capped": {"max_attempts": 2},
                "budget": {"budget": {"max_total_tokens": 1}},
                "watch": {"mode": "monitor"},
                "repair-only": {"on_fail": ["repair", "reject"]},
            },
        )
    )


@pytest.mark.parametrize(
    ("alias", "repair"),
    [
        ("fence", "fence"),
        ("trailing", "trailing_comma"),
        ("types", "coerce"),
        ("extra", "drop"),
    ],
)
def test_deterministic_repair(http, ladder_proxy, alias, repair):
    r = post(http, ladder_proxy, extract(alias))
    assert r.status_code == 200, r.text
    valid(r)
    assert r.headers["x-guardproxy-outcome"] == "repaired"
    assert r.headers["x-guardproxy-attempts"] == "1"
    assert repair in r.headers["x-guardproxy-repairs"]


def test_reask_then_valid(http, ladder_proxy):
    r = post(http, ladder_proxy, extract("reask"))
    assert r.status_code == 200, r.text
    valid(r)
    assert r.headers["x-guardproxy-outcome"] == "reasked"
    assert r.headers["x-guardproxy-attempts"] == "2"
    assert int(r.headers["x-guardproxy-total-tokens"]) > r.json()["usage"]["total_tokens"]


def test_fallback_after_reask_budget(http, ladder_proxy):
    r = post(http, ladder_proxy, extract("fallback"))
    assert r.status_code == 200, r.text
    valid(r)
    assert r.headers["x-guardproxy-outcome"] == "fallback"
    assert r.headers["x-guardproxy-deployment"] == "mock/schema"
    assert r.headers["x-guardproxy-attempts"] == "3"  # first + one re-ask, then the fallback


def test_rejected_after_everything(http, ladder_proxy):
    r = post(http, ladder_proxy, extract("hopeless"))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "guardrail_violation" and err["code"] == "output_validation_failed"
    assert err["violations"] and {"validator", "message", "path"} <= set(err["violations"][0])
    assert any(v["validator"] == "json_schema" for v in err["violations"])
    assert r.headers["x-should-retry"] == "false"
    assert r.headers["x-guardproxy-outcome"] == "rejected"
    assert r.headers["x-guardproxy-attempts"] == "6"  # (1 + 2 re-asks) per deployment
    again = post(http, ladder_proxy, extract("hopeless"))
    assert again.headers["x-guardproxy-cache"] == "miss"  # a rejection is never cached


def test_max_attempts_caps_everything(http, ladder_proxy):
    r = post(http, ladder_proxy, extract("capped"))
    assert r.status_code == 422
    assert r.headers["x-guardproxy-attempts"] == "2"


def test_token_budget_stops_the_ladder(http, ladder_proxy):
    r = post(http, ladder_proxy, extract("budget"))
    assert r.status_code == 422
    assert r.headers["x-guardproxy-attempts"] == "1"


def test_monitor_mode_flags_and_passes(http, ladder_proxy):
    r = post(http, ladder_proxy, extract("monitor"))
    assert r.status_code == 200
    assert r.headers["x-guardproxy-outcome"] == "flagged"
    data = json.loads(r.json()["choices"][0]["message"]["content"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)


def test_ladder_without_reask_rejects_at_once(http, ladder_proxy):
    r = post(http, ladder_proxy, extract("noreask"))
    assert r.status_code == 422
    assert r.headers["x-guardproxy-attempts"] == "1"


def test_transient_error_is_retried_on_same_deployment(http, ladder_proxy):
    r = post(http, ladder_proxy, extract("retry"))
    assert r.status_code == 200, r.text
    assert r.headers["x-guardproxy-outcome"] == "pass"
    assert r.headers["x-guardproxy-attempts"] == "2"


def test_valid_answer_is_cached_and_replayed(http, ladder_proxy):
    first = post(http, ladder_proxy, extract("fence", "cache me"))
    second = post(http, ladder_proxy, extract("fence", "cache me"))
    assert first.headers["x-guardproxy-cache"] == "miss"
    assert second.headers["x-guardproxy-cache"] == "hit"
    assert second.headers["x-guardproxy-attempts"] == "0"
    assert second.headers["x-guardproxy-outcome"] == "repaired"
    assert (
        second.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    )
    assert second.headers["x-guardproxy-cache-key"] == first.headers["x-guardproxy-cache-key"]
    refresh = post(http, ladder_proxy, extract("fence", "cache me"), **{"cache-control": "no-cache"})
    assert (
        refresh.headers["x-guardproxy-cache"] == "refresh" and refresh.headers["x-guardproxy-attempts"] == "1"
    )
    bypass = post(http, ladder_proxy, extract("fence", "cache me"), **{"cache-control": "no-store"})
    assert bypass.headers["x-guardproxy-cache"] == "bypass"


def test_stream_gets_the_repaired_answer(ladder_proxy):
    with httpx.stream(
        "POST",
        ladder_proxy.url + "/v1/chat/completions",
        timeout=30,
        json={
            "model": "fence",
            "messages": [{"role": "user", "content": "stream me"}],
            "response_format": RF,
            "stream": True,
        },
    ) as r:
        assert r.headers["x-guardproxy-outcome"] == "repaired"
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in lines[:-1]
        if json.loads(line[6:])["choices"]
    )
    jsonschema.validate(json.loads(text), SCHEMA)
