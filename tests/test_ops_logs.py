"""Access log (one JSON line per request) and audit trail (repair, re-ask, rejection), end to end."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import stat
import threading
from typing import Any

import httpx
import pytest

from proxy.access_log import ACCESS_FIELDS, ACCESS_LOGGER, log_request
from proxy.audit import AuditLog
from proxy.logs import BatchingStreamHandler, JsonFormatter, TextFormatter
from proxy.redaction import scrub

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
RF = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
EMAIL = "alice.secret@example.com"
CARD = "4111 1111 1111 1111"
FENCED = '```json\n{"name": "' + EMAIL + '", "age": 3}\n```'
FORBIDDEN = f"This is FORBIDDEN text; write to {EMAIL} or charge card {CARD}. " + "padding " * 60


@pytest.fixture
def proxy(make_config, start_proxy, tmp_path):
    config = make_config(
        {
            "echo": {"deployments": [{"model": "mock/echo"}]},
            "fenced": {
                "policy": "strict-json",
                "deployments": [{"model": "mock/static", "mock": {"content": FENCED}}],
            },
            "pii": {
                "policy": "mask-pii",
                "deployments": [{"model": "mock/static", "mock": {"content": f"mail {EMAIL} now"}}],
            },
            "boast": {
                "policy": "flag-boasts",
                "deployments": [{"model": "mock/static", "mock": {"content": "simply the best"}}],
            },
            "bad": {
                "policy": "no-forbidden",
                "deployments": [{"model": "mock/static", "mock": {"content": FORBIDDEN}}],
            },
        },
        policies={
            "no-forbidden": {
                "validators": [{"type": "regex", "deny": ["(?i)forbidden"]}],
                "on_fail": ["reask", "reject"],
                "reask": {"max": 1},
            },
            "mask-pii": {"validators": [{"type": "pii", "on_fail": "redact"}], "on_fail": ["reject"]},
            "flag-boasts": {
                "validators": [{"type": "regex", "deny": ["(?i)the best"], "on_fail": "flag"}],
                "on_fail": ["reject"],
            },
        },
        auth={"keys": [{"name": "team-logs", "key": "sk-logs-client-1234", "models": ["*"]}]},
    )
    return start_proxy(config)


def post(proxy, body, **headers):
    return httpx.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": "Bearer sk-logs-client-1234", **headers},
        timeout=20,
    )


def access_records(caplog):
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


def audit_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_one_access_line_per_request_with_fields(proxy, caplog):
    caplog.set_level(logging.INFO, logger="guardproxy")
    ok = post(
        proxy, {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}, **{"x-request-id": "r-1"}
    )
    bad = post(proxy, {"model": "echo", "messages": "nope"}, **{"x-request-id": "r-2"})
    assert ok.status_code == 200 and bad.status_code == 400
    records = access_records(caplog)
    assert [r.fields["client_request_id"] for r in records] == ["r-1", "r-2"]  # the client's, kept
    ours = [ok.headers["x-guardproxy-request-id"], bad.headers["x-guardproxy-request-id"]]
    assert [ok.headers["x-request-id"], bad.headers["x-request-id"]] == ["r-1", "r-2"]  # echoed
    assert [r.fields["request_id"] for r in records] == ours
    first, second = (r.fields for r in records)
    assert set(ACCESS_FIELDS) <= set(first)
    assert first["key"] == "team-logs" and first["alias"] == "echo"
    assert first["deployment"] == "mock/echo" and first["outcome"] == "pass"
    assert first["attempts"] == 1 and first["cache"] == "miss" and first["status"] == 200
    assert first["tokens"] == int(ok.headers["x-guardproxy-total-tokens"]) > 0
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] >= 0
    assert second["status"] == 400 and second["outcome"] == "error" and second["attempts"] == 0
    line = json.loads(JsonFormatter().format(records[0]))  # what production writes: one JSON object
    assert line["msg"] == "request" and line["client_request_id"] == "r-1" and line["status"] == 200


def test_cache_hit_is_logged_as_hit_with_zero_attempts(proxy, caplog):
    caplog.set_level(logging.INFO, logger="guardproxy")
    body = {"model": "echo", "messages": [{"role": "user", "content": "twice"}]}
    assert post(proxy, body).status_code == 200
    assert post(proxy, body).headers["x-guardproxy-cache"] == "hit"
    hit = access_records(caplog)[-1].fields
    assert hit["cache"] == "hit" and hit["attempts"] == 0 and hit["tokens"] == 0


def test_text_format_on_a_terminal_is_one_readable_line():
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"request_id": "abc", "status": 200, "key": "team-a"}
    text = TextFormatter().format(record)
    assert "\n" not in text and "request request_id=abc status=200 key=team-a" in text


def test_audit_repair_line_with_redacted_excerpt(proxy, tmp_path):
    r = post(
        proxy, {"model": "fenced", "messages": [{"role": "user", "content": "x"}], "response_format": RF}
    )
    assert r.status_code == 200 and r.headers["x-guardproxy-outcome"] == "repaired"
    lines = [a for a in audit_lines(tmp_path) if a["request_id"] == r.headers["x-request-id"]]
    assert [a["kind"] for a in lines] == ["repair"]
    repair = lines[0]
    assert repair["policy"] == "strict-json" and repair["alias"] == "fenced"
    assert repair["deployment"] == "mock/static" and "fence" in repair["repairs"]
    assert "[EMAIL]" in repair["excerpt"] and EMAIL not in json.dumps(repair)


def test_audit_violation_reask_rejection(proxy, tmp_path):
    r = post(proxy, {"model": "bad", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 422, r.text
    rid = r.headers["x-request-id"]
    lines = [a for a in audit_lines(tmp_path) if a["request_id"] == rid]
    kinds = [a["kind"] for a in lines]
    assert kinds == ["violation", "reask", "violation", "rejection"], kinds
    for line in lines:
        assert line["policy"] == "no-forbidden" and line["alias"] == "bad"
        assert EMAIL not in json.dumps(line) and "4111" not in json.dumps(line)
    violation = lines[0]
    assert violation["validator"] == "regex" and violation["deployment"] == "mock/static"
    assert "[EMAIL]" in violation["excerpt"] and "[CREDIT_CARD]" in violation["excerpt"]
    assert len(violation["excerpt"]) <= 201  # truncated (the output is ~600 characters)
    assert lines[-1]["validator"] == "regex" and lines[-1]["message"]
    mode = stat.S_IMODE(os.stat(tmp_path / "audit.jsonl").st_mode)
    assert mode == 0o600


def test_audit_redaction_and_flagged_lines(proxy, tmp_path):
    masked = post(proxy, {"model": "pii", "messages": [{"role": "user", "content": "x"}]})
    assert masked.status_code == 200 and masked.headers["x-guardproxy-outcome"] == "redacted"
    assert EMAIL not in masked.text
    flagged = post(proxy, {"model": "boast", "messages": [{"role": "user", "content": "x"}]})
    assert flagged.status_code == 200 and flagged.headers["x-guardproxy-outcome"] == "flagged"
    by_request = {}
    for line in audit_lines(tmp_path):
        by_request.setdefault(line["request_id"], []).append(line)
    (redaction,) = by_request[masked.headers["x-request-id"]]
    assert redaction["kind"] == "redaction" and redaction["redactions"] == ["pii:email"]
    assert redaction["excerpt"] == "mail [EMAIL] now" and redaction["policy"] == "mask-pii"
    (flag,) = by_request[flagged.headers["x-request-id"]]
    assert flag["kind"] == "flagged" and flag["validator"] == "regex" and flag["excerpt"] == "simply the best"


def test_audit_file_rotates_and_tail_reads_the_end(tmp_path):
    path = tmp_path / "sub" / "audit.jsonl"
    log = AuditLog(path, max_bytes=2048, backups=2)
    for i in range(60):
        log.record("violation", request_id=f"r{i}", policy="p", deployment="d", alias="a", excerpt="x" * 50)
    tail = log.tail(5)
    log.close()
    assert [t["request_id"] for t in tail] == [f"r{i}" for i in range(55, 60)]
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for name in files:
        assert stat.S_IMODE(os.stat(path.parent / name).st_mode) == 0o600
        assert all(len(line) < 2048 for line in (path.parent / name).read_text().splitlines())


def test_audit_never_raises_and_disabled_path(tmp_path):
    AuditLog(None, max_bytes=1024, backups=0).record(
        "repair", request_id="r", policy="p", deployment="d", alias="a"
    )
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    log = AuditLog(blocked / "audit.jsonl", max_bytes=1024, backups=0)
    log.record("repair", request_id="r", policy="p", deployment="d", alias="a", excerpt=EMAIL)
    assert not log.enabled and log.tail(3) == []


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefgh1234",
        "sk-ant-api03-abcdefgh",
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_abcdefghijklmnopqrstuv",
        "gho_abcdefghijklmnopqrstuv",
        "ghs_abcdefghijklmnopqrstuv",
        "xoxb-1234567890-abc",
        "AIzaSyA1234567890abcdefghijklmnopqrs",
        "Bearer abcdefgh.ijk",
        "bearer abcdefgh.ijk",
        "https://user:pw@internal.example/v1",
        "REDIS://:pw@cache:6379/0",
    ],
)
def test_scrub_removes_every_key_and_url_shape(secret):
    text = f'{{"msg": "upstream said {secret} end", "n": 1}}'
    cleaned = scrub(text)
    assert secret not in cleaned and "end" in cleaned
    assert scrub("a plain line with no secrets: 200 OK") == "a plain line with no secrets: 200 OK"


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _handler(stream: CountingStream, **options: Any) -> tuple[logging.Logger, BatchingStreamHandler]:
    handler = BatchingStreamHandler(stream, **options)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"guardproxy.test.batching.{id(handler)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


def test_access_lines_go_out_in_one_write_per_interval_and_warnings_at_once():
    stream = CountingStream()
    logger, _ = _handler(stream, interval=0.05)

    async def scenario() -> tuple[str, str, str]:
        for i in range(20):
            logger.info("request %d", i)
        before = stream.getvalue()
        await asyncio.sleep(0.15)
        after_interval = stream.getvalue()
        logger.info("request 20")
        logger.warning("upstream down")
        return before, after_interval, stream.getvalue()

    before, after_interval, after_warning = asyncio.run(scenario())
    assert before == ""  # nothing written yet: the batch waits for its interval
    assert after_interval.splitlines() == [f"INFO request {i}" for i in range(20)]
    assert after_warning.splitlines()[-2:] == ["INFO request 20", "WARNING upstream down"]
    assert stream.writes == 2  # 20 lines in one write, then the pending line with the warning


def test_batching_flushes_at_max_lines_and_outside_an_event_loop():
    stream = CountingStream()
    logger, handler = _handler(stream, interval=60, max_lines=5)

    async def burst() -> str:
        for i in range(5):
            logger.info("request %d", i)
        return stream.getvalue()

    assert asyncio.run(burst()).count("\n") == 5  # full batch written without waiting 60 s
    logger.info("no loop here")
    assert stream.getvalue().endswith("INFO no loop here\n")
    handler.close()


def _access_record(**fields: Any) -> logging.LogRecord:
    """What `log_request` hands the handlers, captured from a logger of the test's own."""
    logger = logging.getLogger("guardproxy.test-access")
    captured: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = captured.append  # type: ignore[method-assign]
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    line = dict.fromkeys(ACCESS_FIELDS) | {"method": "POST", "status": 200, "latency_ms": 1.23456} | fields
    log_request(logger, **line)
    (record,) = captured
    return record


def test_access_records_carry_what_make_record_gives() -> None:
    record = _access_record(request_id="r1")
    logger = logging.getLogger("guardproxy.test-access")
    made = logger.makeRecord(logger.name, logging.INFO, record.pathname, 0, "request", (), None)
    timing = {"created", "msecs", "relativeCreated"}
    assert {k: v for k, v in vars(record).items() if k not in timing | {"fields", "own_fields"}} == {
        k: v for k, v in vars(made).items() if k not in timing
    }
    assert abs(record.created - made.created) < 60 and 0 <= record.msecs < 1000
    assert record.fields["latency_ms"] == 1.23 and list(record.fields) == list(ACCESS_FIELDS)
    assert record.getMessage() == "request"

    other: list[logging.LogRecord] = []
    thread = threading.Thread(target=lambda: other.append(_access_record()), name="another-thread")
    thread.start()
    thread.join()
    assert other[0].threadName == "another-thread"  # each thread's records name their own thread


def test_json_lines_scrub_every_value_the_proxy_did_not_make() -> None:
    formatter = JsonFormatter(secrets=['cfg"secret-1234'])
    for _ in range(2):  # the second line's values come from the formatter's memo: scrubbed all the same
        record = _access_record(
            request_id="0123abcd",
            client_request_id="sk-proj-abcdefgh1234",
            alias='the cfg"secret-1234 alias',  # a quote: the rendered line holds it escaped
            path="/v1/chat/completions",
            key="team-a",
        )
        line = json.loads(formatter.format(record))
        assert line["client_request_id"] == "[redacted]" and line["alias"] == "the [redacted] alias"
        assert line["request_id"] == "0123abcd" and line["key"] == "team-a" and line["status"] == 200
    nested = _access_record(extra={"upstream": "https://user:pw@internal.example/v1"})
    assert "internal.example" not in formatter.format(nested)  # not a plain value: the whole line is scrubbed


def test_a_clean_access_line_renders_as_before() -> None:
    """The per-value scrubbing renders exactly what rendering then scrubbing the whole line did."""
    record = _access_record(request_id="ab12", key="team-a", alias="echo", policy="default", cache="hit")
    before: dict[str, Any] = {
        "ts": round(record.created, 3),
        "level": "info",
        "logger": record.name,
        "msg": "request",
        **record.fields,  # type: ignore[attr-defined]
    }
    assert JsonFormatter(["sk-mock"]).format(record) == scrub(json.dumps(before, separators=(",", ":")))
