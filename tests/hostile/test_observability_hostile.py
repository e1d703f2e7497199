"""Observability against hostile clients: a chosen x-request-id cannot become the correlation id,
rejected answers are paid for in the metrics, and /metrics is for admin keys only."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from proxy.access_log import ACCESS_LOGGER
from tests.helpers import metric_sum

ADMIN, USER = "sk-obs-admin-00001", "sk-obs-user-000002"
KEYS = [{"name": "ops", "key": ADMIN, "admin": True}, {"name": "app", "key": USER}]
MODELS = {
    "ok": {"deployments": [{"model": "mock/echo"}]},
    "refused": {"policy": "deny-all", "deployments": [{"model": "mock/static", "mock": {"content": "good"}}]},
}
POLICIES = {"deny-all": {"validators": [{"type": "regex", "deny": ["good"]}], "on_fail": ["reask", "reject"]}}


@pytest.fixture
def proxy(make_config, start_proxy):
    return start_proxy(make_config(MODELS, policies=POLICIES, auth={"keys": KEYS}))


def chat(proxy, model: str, key: str = USER, **headers: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}", "cache-control": "no-store", **headers}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=headers, timeout=20)


def test_a_client_request_id_is_kept_but_never_the_correlation_id(proxy, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="guardproxy")
    first = chat(proxy, "refused", **{"x-request-id": "victim-request-7"})
    second = chat(proxy, "refused", **{"x-request-id": "victim-request-7"})
    assert first.status_code == second.status_code == 422
    assert first.headers["x-request-id"] == second.headers["x-request-id"] == "victim-request-7"  # echoed
    ids = [first.headers["x-guardproxy-request-id"], second.headers["x-guardproxy-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids) and ids[0] != ids[1]  # ours, unique

    access = [r.fields for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [(a["request_id"], a["client_request_id"]) for a in access] == [
        (i, "victim-request-7") for i in ids
    ]

    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {a["request_id"] for a in audit} == set(ids)  # every line correlates with the server's id
    assert {a["client_request_id"] for a in audit} == {"victim-request-7"}
    assert {a["kind"] for a in audit if a["request_id"] == ids[0]} >= {"violation", "rejection"}


def test_a_hostile_request_id_is_dropped_not_logged(proxy, caplog):
    caplog.set_level(logging.INFO, logger="guardproxy")
    r = chat(proxy, "ok", **{"x-request-id": "x" * 500})
    assert r.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    assert r.headers["x-request-id"] == r.headers["x-guardproxy-request-id"]  # not echoed: ours instead
    (record,) = [r.fields for r in caplog.records if r.name == ACCESS_LOGGER]
    assert record["client_request_id"] is None


def test_tokens_and_cost_of_a_422_are_counted(make_config, start_proxy):
    priced = {
        "refused": {
            "policy": "deny-all",
            "deployments": [
                {
                    "model": "mock/static",
                    "mock": {"content": "so good"},
                    "input_cost_per_token": 0.001,
                    "output_cost_per_token": 0.002,
                }
            ],
        }
    }
    proxy = start_proxy(make_config(priced, policies=POLICIES, auth={"keys": KEYS}))
    rejected = [chat(proxy, "refused") for _ in range(2)]
    assert {r.status_code for r in rejected} == {422}
    spent = sum(int(r.headers["x-guardproxy-total-tokens"]) for r in rejected)
    assert spent > 0 and all(int(r.headers["x-guardproxy-attempts"]) > 1 for r in rejected)  # re-asks too
    text = httpx.get(proxy.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}).text
    assert metric_sum(text, "guardproxy_tokens_total", alias="refused", key="app") == spent
    cost = sum(float(r.headers["x-guardproxy-cost"]) for r in rejected)
    assert metric_sum(text, "guardproxy_cost_usd_total", alias="refused", key="app") == pytest.approx(cost)


def test_metrics_need_an_admin_key_when_keys_are_configured(proxy):
    url = proxy.url + "/metrics"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
    assert "guardproxy_" not in anonymous.text
    user = httpx.get(url, headers={"authorization": f"Bearer {USER}"})
    assert user.status_code == 403 and user.json()["error"]["type"] == "permission_error"
    assert "guardproxy_" not in user.text
    admin = httpx.get(url, headers={"authorization": f"Bearer {ADMIN}"})
    assert admin.status_code == 200 and "guardproxy_requests_total" in admin.text


def test_metrics_auth_none_and_keyless_configs_stay_open(make_config, start_proxy):
    opened = start_proxy(
        make_config(MODELS, policies=POLICIES, auth={"keys": KEYS}, server={"metrics_auth": "none"})
    )
    assert httpx.get(opened.url + "/metrics").status_code == 200
    keyless = start_proxy(make_config(MODELS, policies=POLICIES))
    assert httpx.get(keyless.url + "/metrics").status_code == 200
