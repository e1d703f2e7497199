"""The dashboard through the real server: the snapshot carries the /metrics numbers; admin keys only."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.dashboard import quantile, read_audit_tail

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
RF = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
ADMIN_KEY = "sk-dash-admin-0123456789abcdef"
USER_KEY = "sk-dash-user-0123456789abcdef"
MODELS = {
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
KEYS = {"keys": [{"name": "ops", "key": ADMIN_KEY, "admin": True}, {"name": "app", "key": USER_KEY}]}


def send_traffic(client: openai.OpenAI, tag: str = "") -> list[dict[str, str]]:
    """Passes, cache hits, repaired structured outputs and one unknown model; the headers of every answer."""
    headers = []
    plan = [("echo", f"hello {tag}{i}", None) for i in range(4)] + [("echo", f"hello {tag}0", None)] * 2
    plan += [("structured", f"a person {tag}{i}", RF) for i in range(3)] + [
        ("structured", f"a person {tag}0", RF)
    ]
    for model, text, rf in plan:
        extra = {"response_format": rf} if rf else {}
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}], **extra
        )
        raw.parse()
        headers.append(dict(raw.headers))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(
            model="hopeless", messages=[{"role": "user", "content": f"nobody {tag}"}], response_format=RF
        )
    return headers


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics parsed: (sample name, labels) -> value."""
    text = httpx.get(url + "/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(
        value for (sample, have), value in metrics.items() if sample == name and set(labels.items()) <= have
    )


@pytest.fixture
def dash_server(make_config: Callable[..., Path], start_proxy: Callable[..., Any]) -> Iterator[Any]:
    yield start_proxy(make_config(MODELS, auth=KEYS))


def snapshot(server: Any, key: str | None = ADMIN_KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(server.url + "/ui/api/snapshot", headers=headers, timeout=10)


def test_snapshot_matches_metrics_and_headers(
    dash_server: Any, client_for: Callable[..., openai.OpenAI]
) -> None:
    answers = send_traffic(client_for(dash_server, key=ADMIN_KEY))
    snap = snapshot(dash_server).json()
    metrics = scrape(dash_server.url)
    outcomes = Counter(h["x-guardproxy-outcome"] for h in answers)
    assert outcomes["repaired"] >= 3, outcomes  # the fence defect is repaired deterministically

    assert snap["requests_total"] == total(metrics, "guardproxy_requests_total") == len(answers) + 2
    for outcome, count in outcomes.items():
        assert (
            snap["outcomes"][outcome] == total(metrics, "guardproxy_requests_total", outcome=outcome) == count
        )
    assert snap["outcomes"]["error"] == total(metrics, "guardproxy_requests_total", outcome="error") == 1
    assert (
        snap["outcomes"]["rejected"] == total(metrics, "guardproxy_requests_total", outcome="rejected") == 1
    )
    for row in snap["requests"]:
        labels = {"alias": row["alias"], "outcome": row["outcome"], "status": row["status"]}
        assert row["count"] == total(metrics, "guardproxy_requests_total", **labels)

    hits = sum(h["x-guardproxy-cache"] == "hit" for h in answers)
    assert hits >= 2
    assert snap["cache"]["results"]["hit"] == total(metrics, "guardproxy_cache_total", result="hit") == hits
    misses = total(metrics, "guardproxy_cache_total", result="miss")
    assert snap["cache"]["hit_ratio"] == pytest.approx(hits / (hits + misses))

    for alias, sent in (("echo", 6), ("structured", 4)):
        lat = snap["latency"][alias]
        assert lat["count"] == total(metrics, "guardproxy_request_seconds_count", alias=alias) == sent
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= 60
    for deployment in ("mock/echo", "mock/broken-json", "mock/static"):
        calls = total(metrics, "guardproxy_upstream_calls_total", deployment=deployment)
        assert snap["deployments"][deployment]["calls"] == calls > 0
        assert snap["deployments"][deployment]["cooling"] is False
    attempts = sum(int(h["x-guardproxy-attempts"]) for h in answers)
    assert (
        snap["deployments"]["mock/echo"]["calls"] + snap["deployments"]["mock/broken-json"]["calls"]
        == attempts
    )

    assert snap["tokens"]["spent"] == total(metrics, "guardproxy_tokens_total") > 0
    assert snap["tokens"]["saved"] == total(metrics, "guardproxy_cache_tokens_saved_total")
    for row in snap["violations"]:
        labels = {"policy": row["policy"], "validator": row["validator"]}
        assert row["count"] == total(metrics, "guardproxy_violations_total", **labels)
    assert snap["repairs"].get("fence", 0) == total(metrics, "guardproxy_repairs_total", kind="fence")
    assert snap["aliases_configured"] == ["echo", "hopeless", "structured"]
    assert snap["in_flight"] == 0


def test_admin_key_required(dash_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("guardproxy").addHandler(caplog.handler)
    try:
        url = dash_server.url
        bodies = []
        for path, headers, status in [
            ("/ui", {}, 401),
            (f"/ui?key={USER_KEY}", {}, 403),
            ("/ui", {"authorization": f"Bearer {USER_KEY}"}, 403),
            ("/ui?key=sk-wrong-0123456789", {}, 401),
            (f"/ui/api/snapshot?key={ADMIN_KEY}", {}, 401),  # the snapshot takes the key as a header only
            ("/ui/api/snapshot", {"authorization": f"Bearer {USER_KEY}"}, 403),
        ]:
            r = httpx.get(url + path, headers=headers, timeout=10)
            assert r.status_code == status, (path, r.text)
            error = r.json()["error"]
            assert error["type"] == ("authentication_error" if status == 401 else "permission_error")
            bodies.append(r.text)
        page = httpx.get(url + f"/ui?key={ADMIN_KEY}", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert '<script src="ui/dashboard.js">' in page.text
        by_header = httpx.get(url + "/ui", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
        assert by_header.status_code == 200 and by_header.text == page.text
        snap = snapshot(dash_server)
        assert snap.status_code == 200 and snap.json()["requests_total"] == 0
        for name, kind in [("dashboard.js", "javascript"), ("dashboard.css", "css")]:
            asset = httpx.get(url + "/ui/" + name, timeout=10)  # static code, no data: no key needed
            assert (
                asset.status_code == 200 and kind in asset.headers["content-type"] and len(asset.text) > 1000
            )
        assert httpx.get(url + "/ui/config.yaml", timeout=10).status_code == 404
        assert httpx.get(url + "/ui/..%2fdashboard.py", timeout=10).status_code == 404
        bodies += [page.text, snap.text]
        for text in bodies + [caplog.text]:
            assert ADMIN_KEY not in text and USER_KEY not in text
    finally:
        logging.getLogger("guardproxy").removeHandler(caplog.handler)


def test_dashboard_can_be_turned_off(
    make_config: Callable[..., Path], start_proxy: Callable[..., Any]
) -> None:
    server = start_proxy(make_config(MODELS, server={"admin_ui": False}))
    for path in ("/ui", "/ui/api/snapshot", "/ui/dashboard.js"):
        assert httpx.get(server.url + path, timeout=10).status_code == 404
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def test_open_without_keys(make_config: Callable[..., Path], start_proxy: Callable[..., Any]) -> None:
    server = start_proxy(make_config(MODELS))
    assert httpx.get(server.url + "/ui", timeout=10).status_code == 200
    assert snapshot(server, key=None).json()["aliases_configured"] == ["echo", "hopeless", "structured"]


def test_audit_tail_bounded_newest_first_and_scrubbed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    assert read_audit_tail(path) == []  # no file yet
    lines = [
        json.dumps(
            {
                "ts": 1000.0 + i,
                "kind": "violation",
                "request_id": f"req-{i}",
                "policy": "strict-json",
                "validator": "json",
                "message": "not JSON",
                "path": "",
                "excerpt": f"output {i} with key sk-secret{i:04d}abcdefgh and <b>html</b>",
            }
        )
        for i in range(2000)
    ]
    lines.insert(1995, "{not json")
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 200_000
    events = read_audit_tail(path, limit=10, max_bytes=64 * 1024)
    assert [e["request_id"] for e in events] == [f"req-{i}" for i in range(1999, 1989, -1)]
    assert events[0]["validator"] == "json" and events[0]["message"] == "not JSON"
    assert events[0]["excerpt"] == "output 1999 with key [redacted] and <b>html</b>"
    everything = read_audit_tail(path, limit=10_000, max_bytes=64 * 1024)
    assert 0 < len(everything) < 2000  # only the last 64 KB were read; the cut first line was dropped
    assert all(e["request_id"].startswith("req-") for e in everything)


def test_snapshot_shows_audit_events(
    make_config: Callable[..., Path], start_proxy: Callable[..., Any]
) -> None:
    """Lines written by the real audit writer at logging.audit_path come back newest first, redacted."""
    from proxy.audit import AuditLog

    config = make_config(MODELS)
    server = start_proxy(config)
    before = snapshot(server, key=None).json()
    assert before["audit_log"] is False and before["recent"] == []  # no file yet: tolerated
    audit = AuditLog(config.parent / "audit.jsonl", max_bytes=1 << 20, backups=1)
    ids = dict(alias="structured", policy="strict-json", deployment="mock/broken-json")
    audit.record(
        "violation",
        request_id="dash-1",
        validator="json",
        message="not JSON",
        path="",
        excerpt='```json {"mail": "ada@example.com"}',
        **ids,
    )
    audit.record("repair", request_id="dash-1", repairs=["fence"], excerpt='{"ok": true}', **ids)
    audit.record(
        "rejection",
        request_id="dash-2",
        validator="json_schema",
        message="age: not an integer",
        path="/age",
        **ids,
    )
    audit.close()
    snap = snapshot(server, key=None).json()
    assert snap["audit_log"] is True
    mine = [e for e in snap["recent"] if e["request_id"].startswith("dash-")]
    assert [(e["kind"], e["request_id"]) for e in mine] == [
        ("rejection", "dash-2"),
        ("repair", "dash-1"),
        ("violation", "dash-1"),
    ]
    assert mine[0]["validator"] == "json_schema" and mine[0]["path"] == "/age"
    assert mine[1]["repairs"] == ["fence"] and mine[1]["excerpt"] == '{"ok": true}'
    assert "ada@example.com" not in mine[2]["excerpt"] and mine[2]["policy"] == "strict-json"


def test_quantile_matches_prometheus_interpolation() -> None:
    inf = float("inf")
    assert quantile(0.5, []) is None
    assert quantile(0.5, [(0.1, 0.0), (inf, 0.0)]) is None
    assert quantile(0.5, [(0.1, 0.0), (0.5, 10.0), (inf, 10.0)]) == pytest.approx(0.3)
    assert quantile(0.95, [(0.1, 5.0), (1.0, 10.0), (inf, 10.0)]) == pytest.approx(0.91)
    assert quantile(0.99, [(0.1, 1.0), (1.0, 1.0), (inf, 100.0)]) == 1.0  # in +Inf: the last finite bound
