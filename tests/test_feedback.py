"""Feedback, the record store and `cases export` through a real guardproxy on loopback (mock provider)."""

from __future__ import annotations

import io
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from proxy.cases_export import run_export
from proxy.policytest import run_policy_test
from proxy.settings import load_settings
from tests.test_dashboard import total

ADMIN = "sk-fb-admin-0123456789abcdef"
ALICE = "sk-fb-alice-0123456789abcdef"
BOB = "sk-fb-bobby-0123456789abcdef"
KEYS = {
    "keys": [
        {"name": "ops", "key": ADMIN, "admin": True},
        {"name": "alice", "key": ALICE},
        {"name": "bob", "key": BOB},
    ]
}
RF = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
}
MONITOR = {  # monitor mode: the bad answer passes through, `flagged`, and is cached
    "mode": "monitor",
    "validators": [{"type": "regex", "deny": ["(?i)guaranteed"]}],
}
MODELS = {
    "advice": {
        "policy": "watch",
        "deployments": [{"model": "mock/static", "mock": {"content": "Returns are guaranteed!"}}],
    },
    "echo": {"deployments": [{"model": "mock/echo"}]},
    "structured": {
        "policy": "strict-json",
        "deployments": [{"model": "mock/broken-json", "mock": {"defect": "fence"}}],
    },
    "hopeless": {
        "policy": "strict-json",
        "deployments": [{"model": "mock/static", "mock": {"content": "Sorry, I cannot answer in JSON."}}],
    },
}


def chat(http: httpx.Client, server: Any, key: str, model: str, text: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return http.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )


def feedback(http: httpx.Client, server: Any, key: str, **body: Any) -> httpx.Response:
    return http.post(f"{server.url}/v1/feedback", json=body, headers={"authorization": f"Bearer {key}"})


@pytest.fixture
def served(make_config: Callable[..., Path], start_proxy: Callable[..., Any]) -> tuple[Any, Path]:
    config = make_config(MODELS, auth=KEYS, policies={"watch": MONITOR})
    return start_proxy(config), config


def test_negative_feedback_evicts_the_cached_answer_and_is_counted(
    served: tuple[Any, Path], http: httpx.Client, tmp_path: Path
) -> None:
    server, _ = served
    first = chat(http, server, ALICE, "advice", "Will my fund grow? Mail me at alice@example.com")
    assert first.headers["x-guardproxy-outcome"] == "flagged"
    rid = first.headers["x-request-id"]
    again = chat(http, server, ALICE, "advice", "Will my fund grow? Mail me at alice@example.com")
    assert again.headers["x-guardproxy-cache"] == "hit"  # the bad answer would be served again

    assert feedback(http, server, BOB, request_id=rid, score="bad").status_code == 404  # not bob's answer
    assert feedback(http, server, ALICE, request_id="0" * 32, score="bad").status_code == 404
    stored = feedback(
        http, server, ALICE, request_id=rid, score="bad", label="promise", comment="no guarantees"
    )
    assert stored.status_code == 201, stored.text
    record = stored.json()
    assert record["id"] == rid and record["outcome"] == "flagged" and record["policy"] == "watch"
    assert (
        record["alias"] == "advice"
        and record["deployment"] == "mock/static"
        and record["key_name"] == "alice"
    )
    assert record["raw_output"]["content"] == "Returns are guaranteed!"
    assert record["final_output"]["content"] == "Returns are guaranteed!"
    assert [v["validator"] for v in record["violations"]] == ["regex"]
    assert record["evicted"] is True
    assert [f["verdict"] for f in record["feedback"]] == ["bad"] and record["feedback"][0][
        "label"
    ] == "promise"
    user_text = record["request"]["messages"][0]["content"]
    assert "alice@example.com" not in user_text and "Will my fund grow?" in user_text  # redacted, kept
    assert "owner" not in record and "cache_key" not in record

    fresh = chat(http, server, ALICE, "advice", "Will my fund grow? Mail me at alice@example.com")
    assert fresh.headers["x-guardproxy-cache"] == "miss" and fresh.headers["x-guardproxy-attempts"] == "1"

    # idempotent per (request, key): a second rating replaces the first; an admin may rate it too
    replaced = feedback(http, server, ALICE, request_id=rid, score=0.5, correction={"text": "No promises."})
    assert [f["verdict"] for f in replaced.json()["feedback"]] == ["good"]
    by_admin = feedback(http, server, ADMIN, request_id=rid, score=-1)
    assert by_admin.status_code == 201 and len(by_admin.json()["feedback"]) == 2

    metrics = scrape_admin(server)
    labels = {"alias": "advice", "policy": "watch", "deployment": "mock/static"}
    assert total(metrics, "guardproxy_feedback_total", score="bad", **labels) == 2
    assert total(metrics, "guardproxy_feedback_total", score="good", **labels) == 1
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    rated = [e for e in events if e["kind"] == "feedback"]
    assert [e["verdict"] for e in rated] == ["bad", "good", "bad"] and rated[0]["request_id"] == rid
    db = tmp_path / "cache" / "records.sqlite3"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def scrape_admin(server: Any) -> dict[Any, float]:
    text = httpx.get(server.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"score": 2}, "score"),
        ({"score": "meh"}, "score"),
        ({"score": "bad", "label": "x" * 201}, "label"),
        ({"score": "bad", "comment": "x" * 4097}, "comment"),
        ({"score": "bad", "correction": "x" * (64 * 1024 + 1)}, "correction"),
        ({"score": "bad", "extra": 1}, "extra"),
    ],
)
def test_feedback_limits(
    served: tuple[Any, Path], http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    server, _ = served
    rid = chat(http, server, ALICE, "advice", "limits").headers["x-request-id"]
    response = feedback(http, server, ALICE, request_id=rid, **body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    ok = {**body, "score": "bad"}
    ok.pop("extra", None)
    ok.update({k: v[: len(v) - 1] for k, v in ok.items() if isinstance(v, str) and k != "score"})
    assert feedback(http, server, ALICE, request_id=rid, **ok).status_code == 201  # one less: accepted


def test_failures_mode_records_failures_only_and_the_responses_id_works(
    served: tuple[Any, Path], http: httpx.Client
) -> None:
    server, _ = served
    passed = chat(http, server, ALICE, "echo", "fine")
    assert passed.headers["x-guardproxy-outcome"] == "pass"
    assert (
        feedback(http, server, ALICE, request_id=passed.headers["x-request-id"], score=1).status_code == 404
    )
    repaired = chat(http, server, ALICE, "structured", "a person", response_format=RF)
    assert repaired.headers["x-guardproxy-outcome"] == "repaired"
    record = feedback(http, server, ALICE, request_id=repaired.headers["x-request-id"], score=1).json()
    assert record["raw_output"]["content"].startswith("```")  # before repair
    assert json.loads(record["final_output"]["content"]) == json.loads(
        repaired.json()["choices"][0]["message"]["content"]
    )
    assert record["repairs"] == ["fence"] and record["request"]["response_format"] == RF
    rejected = chat(http, server, ALICE, "hopeless", "nobody", response_format=RF)
    assert rejected.status_code == 422
    record = feedback(http, server, ALICE, request_id=rejected.headers["x-request-id"], score=-1).json()
    assert record["outcome"] == "rejected" and record["final_output"] is None and record["evicted"] is False
    assert record["raw_output"]["content"] == "Sorry, I cannot answer in JSON."
    assert {v["validator"] for v in record["violations"]} >= {"json"}

    resp = http.post(
        f"{server.url}/v1/responses",
        json={"model": "advice", "input": "any tips?"},
        headers={"authorization": f"Bearer {ALICE}"},
    )
    assert resp.status_code == 200 and resp.json()["id"] == "resp_" + resp.headers["x-request-id"]
    rated = feedback(http, server, ALICE, request_id=resp.json()["id"], score="bad")
    assert rated.status_code == 201 and rated.json()["id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize(("mode", "recorded"), [("none", False), ("all", True), ("feedback", True)])
def test_record_modes(
    make_config: Callable[..., Path],
    start_proxy: Callable[..., Any],
    http: httpx.Client,
    mode: str,
    recorded: bool,
) -> None:
    server = start_proxy(make_config(MODELS, auth=KEYS, policies={"watch": MONITOR}, record=mode))
    rid = chat(http, server, ALICE, "echo", "fine").headers["x-request-id"]
    response = feedback(http, server, ALICE, request_id=rid, score="good")
    assert response.status_code == (201 if recorded else 404)


def test_policy_override_of_record(
    make_config: Callable[..., Path], start_proxy: Callable[..., Any], http: httpx.Client
) -> None:
    server = start_proxy(make_config(MODELS, auth=KEYS, policies={"watch": {**MONITOR, "record": "none"}}))
    rid = chat(http, server, ALICE, "advice", "quiet").headers["x-request-id"]
    assert feedback(http, server, ALICE, request_id=rid, score="bad").status_code == 404


def test_export_then_policy_test(served: tuple[Any, Path], http: httpx.Client, tmp_path: Path) -> None:
    server, config = served
    bad = chat(http, server, ALICE, "advice", "promise me").headers["x-request-id"]
    chat(http, server, ALICE, "advice", "another promise")  # flagged, nobody rated it
    assert feedback(http, server, ADMIN, request_id=bad, score="bad").status_code == 201
    chat(http, server, ALICE, "hopeless", "nobody", response_format=RF)
    settings = load_settings(config)

    out = tmp_path / "watch.cases.yaml"
    assert (
        run_export(
            settings, policy="watch", since="1h", outcomes=[], feedback="bad", out=out, stderr=io.StringIO()
        )
        == 0
    )
    cases = yaml.safe_load(out.read_text())
    assert len(cases) == 1 and cases[0]["output"] == "Returns are guaranteed!"
    assert cases[0]["expect"] == {"outcome": "rejected"}
    policy = tmp_path / "policies" / "watch.yaml"
    report = io.StringIO()
    assert run_policy_test(policy, out, stdout=report) == 1  # monitor mode lets it through: the test fails
    assert "0 passed, 1 failed" in report.getvalue()
    enforce = yaml.safe_load(policy.read_text()) | {"mode": "enforce"}
    policy.write_text(yaml.safe_dump(enforce))
    assert run_policy_test(policy, out, stdout=io.StringIO()) == 0  # the fixed policy passes

    every = tmp_path / "all.cases.yaml"
    assert (
        run_export(
            settings,
            policy="watch",
            since="1h",
            outcomes=["flagged"],
            feedback=None,
            out=every,
            stderr=io.StringIO(),
        )
        == 0
    )
    text = every.read_text()
    assert text.count("# review:") == 1 and len(yaml.safe_load(text)) == 2

    strict = tmp_path / "strict.cases.yaml"
    assert (
        run_export(
            settings,
            policy="strict-json",
            since=None,
            outcomes=["rejected"],
            feedback=None,
            out=strict,
            stderr=io.StringIO(),
        )
        == 0
    )
    (case,) = yaml.safe_load(strict.read_text())
    assert case["request"] == {"response_format": RF} and case["expect"] == {"outcome": "rejected"}
    assert run_policy_test(tmp_path / "policies" / "strict-json.yaml", strict, stdout=io.StringIO()) == 0

    nothing = io.StringIO()
    assert (
        run_export(
            settings,
            policy="watch",
            since="1s",
            outcomes=["rejected"],
            feedback=None,
            out=None,
            stderr=nothing,
        )
        == 1
    )
    assert "nothing written" in nothing.getvalue()


def test_replicas_sharing_redis_share_records_and_eviction(
    make_config: Callable[..., Path], start_proxy: Callable[..., Any], http: httpx.Client, redis_server: Any
) -> None:
    # the eviction reaches the other replica within `memory_ttl` (proxy.cache.memory)
    cache = {"backend": "redis", "url": redis_server.url, "secret": "s" * 16, "memory_ttl": 0.2}
    config = make_config(MODELS, auth=KEYS, policies={"watch": MONITOR}, cache=cache)
    one, two = start_proxy(config), start_proxy(config)
    rid = chat(http, one, ALICE, "advice", "shared").headers["x-request-id"]
    assert chat(http, two, ALICE, "advice", "shared").headers["x-guardproxy-cache"] == "hit"
    rated = feedback(http, two, ALICE, request_id=rid, score="bad")  # rated on the other replica
    assert rated.status_code == 201 and rated.json()["evicted"] is True
    time.sleep(0.2)
    assert chat(http, one, ALICE, "advice", "shared").headers["x-guardproxy-cache"] == "miss"
    queue = http.get(f"{one.url}/ui/api/review", headers={"authorization": f"Bearer {ADMIN}"}).json()
    ids = [item["id"] for item in queue["items"]]
    assert rid in ids and ids == sorted(
        ids, key=lambda i: -next(x["created"] for x in queue["items"] if x["id"] == i)
    )
    (advice,) = [r for r in queue["rates"]["alias"] if r["name"] == "advice"]
    assert advice["rated"] == 1 and advice["bad"] == 1 and advice["bad_rate"] == 1.0
    assert not (Path(config).parent / "cache" / "records.sqlite3").exists()


def test_review_queue_needs_an_admin_key(served: tuple[Any, Path], http: httpx.Client) -> None:
    server, _ = served
    assert (
        http.get(f"{server.url}/ui/api/review", headers={"authorization": f"Bearer {ALICE}"}).status_code
        == 403
    )
    assert http.get(f"{server.url}/ui/review?key={ALICE}").status_code == 403
    page = http.get(f"{server.url}/ui/review?key={ADMIN}")
    assert page.status_code == 200 and "review queue" in page.text
    assert http.get(f"{server.url}/ui/review.js").status_code == 200


@pytest.mark.parametrize("backend", ["disk", "redis"])
def test_feedback_by_the_clients_own_request_id(
    make_config: Callable[..., Path],
    start_proxy: Callable[..., Any],
    http: httpx.Client,
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    """The client's `x-request-id` is echoed and rates its answer when it names exactly one recorded
    answer of the caller's key; ours (`x-guardproxy-request-id`) always does."""
    cache: dict[str, Any] | None = None
    if backend == "redis":
        cache = {"backend": "redis", "url": request.getfixturevalue("redis_server").url, "secret": "s" * 16}
    config = make_config(MODELS, auth=KEYS, policies={"watch": MONITOR}, cache=cache)
    one, two = start_proxy(config), start_proxy(config)  # rated on another replica than it was answered

    def ask(key: str, text: str, client_id: str) -> str:
        body = {"model": "advice", "messages": [{"role": "user", "content": text}]}
        headers = {"authorization": f"Bearer {key}", "x-request-id": client_id}
        r = http.post(f"{one.url}/v1/chat/completions", json=body, headers=headers)
        assert r.headers["x-guardproxy-outcome"] == "flagged"  # recorded (`record: failures`)
        ours = r.headers["x-guardproxy-request-id"]
        assert r.headers["x-request-id"] == client_id and len(ours) == 32 and ours != client_id
        return ours

    alice_first = ask(ALICE, "first question", "order-42")
    bob_first = ask(BOB, "bob's question", "order-42")  # the same client id, another key
    rated = feedback(http, two, ALICE, request_id="order-42", score="bad")
    assert rated.status_code == 201, rated.text
    assert rated.json()["id"] == alice_first and rated.json()["client_request_id"] == "order-42"
    by_bob = feedback(http, two, BOB, request_id="order-42", score="good")
    assert by_bob.status_code == 201 and by_bob.json()["id"] == bob_first
    assert feedback(http, two, ADMIN, request_id="order-42", score=1).status_code == 404  # none of its own
    assert feedback(http, two, ALICE, request_id="order-7", score=1).status_code == 404

    alice_second = ask(ALICE, "second question", "order-42")  # now the client id names two answers
    for rid in (alice_first, alice_second):  # ours still names each one (and waits for its record)
        assert feedback(http, two, ALICE, request_id=rid, score=1).json()["id"] == rid
    assert feedback(http, two, ALICE, request_id="order-42", score=1).status_code == 404
    assert feedback(http, two, BOB, request_id=alice_second, score=1).status_code == 404


def test_a_records_file_of_an_earlier_version_gains_the_client_id_columns(tmp_path: Path) -> None:
    import sqlite3

    from proxy.records import SqliteRecords

    path = tmp_path / "records.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE records (id TEXT PRIMARY KEY, created REAL NOT NULL, expires REAL NOT NULL,"
        " alias TEXT NOT NULL, policy TEXT NOT NULL, outcome TEXT NOT NULL, doc BLOB NOT NULL)"
    )
    doc = {"id": "a" * 32, "created": 1.0, "expires": 9e9, "alias": "m", "policy": "p", "outcome": "flagged"}
    old.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", (*doc.values(), json.dumps(doc)))
    old.commit()
    old.close()
    store = SqliteRecords(path)
    try:
        assert store.get_sync("a" * 32) == doc
        store.put_many_sync([{**doc, "id": "b" * 32, "owner": "o", "client_request_id": "c-1"}])
        assert [d["id"] for d in store.by_client_id_sync("o", "c-1")] == ["b" * 32]
        assert store.by_client_id_sync("other", "c-1") == []
    finally:
        store.close_sync()
