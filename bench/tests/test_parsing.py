"""The harness's parsers and arithmetic: wrk output, /proc, SSE, answer checks, medians, ratios, targets."""

from __future__ import annotations

import json
import os

import pytest

from bench import measure, procs, report, rounds, wrk
from bench.payload import ANSWER, CONTENT, SCHEMA, completion, request_body


def test_wrk_result_line_is_parsed_into_rate_latency_and_errors() -> None:
    out = (
        "Running 2s test\n  1 threads and 8 connections\nBENCH_RESULT 4000 2000000 1520.5 9800.0 1 2 3 4 5\n"
    )
    result = wrk.parse(out)
    assert result.requests == 4000
    assert result.rps == pytest.approx(2000.0)
    assert result.p50_ms == pytest.approx(1.5205)
    assert result.p99_ms == pytest.approx(9.8)
    assert result.errors == 15


def test_wrk_output_without_the_result_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="BENCH_RESULT"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_lua_long_bracket_level_grows_past_what_the_body_contains() -> None:
    body = b'{"a": "x]]y]=]z"}'
    script = wrk.lua_script(body, {"Content-Type": "application/json"})
    assert 'wrk.body = [==[{"a": "x]]y]=]z"}]==]' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script
    assert "done = function" in script and wrk.MARK in script


def test_proc_stat_with_parentheses_and_spaces_in_the_command_name() -> None:
    fields = ["S", "77"] + ["0"] * 9 + [str(3 * procs.CLK_TCK), str(procs.CLK_TCK)] + ["0"] * 30
    text = "1234 (odd) name (x)) " + " ".join(fields)
    ppid, cpu = procs.parse_stat(text)
    assert ppid == 77
    assert cpu == pytest.approx(4.0)


def test_usage_of_this_process_reads_cpu_and_rss() -> None:
    sum(i * i for i in range(300_000))  # burn a little CPU
    seen = procs.usage(os.getpid())
    assert seen.cpu_s > 0
    assert 10 * 2**20 < seen.rss_bytes < 4 * 2**30


def test_sse_content_joins_deltas_and_requires_done() -> None:
    chunks = [{"choices": [{"delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{"choices": [{"delta": {"content": part}}]} for part in ("ab", "cd")]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    assert measure.sse_content((body + "data: [DONE]\n\n").encode()) == "abcd"
    with pytest.raises(ValueError, match="DONE"):
        measure.sse_content(body.encode())
    with pytest.raises(ValueError, match="error event"):
        measure.sse_content(b'data: {"error": {"message": "cut"}}\n\n')


def test_check_accepts_the_document_and_rejects_anything_else() -> None:
    good = measure.Reply(200, {}, json.dumps(completion()).encode())
    assert measure.check(good, stream=False) is None
    other = completion()
    other["choices"][0]["message"]["content"] = json.dumps({**ANSWER, "total": 1})
    assert "differs" in (
        measure.check(measure.Reply(200, {}, json.dumps(other).encode()), stream=False) or ""
    )
    assert "HTTP 500" in (measure.check(measure.Reply(500, {}, b"boom"), stream=False) or "")


def test_payload_answer_is_about_1_kb_and_matches_its_schema() -> None:
    import jsonschema

    assert 800 <= len(CONTENT) <= 1400
    jsonschema.validate(ANSWER, SCHEMA)
    body = request_body(stream=True)
    assert body["stream"] is True
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA


def _runs(pairs: dict[str, list[tuple[int, float, float]]]) -> dict[str, dict[str, list[dict[str, float]]]]:
    return {
        c: [{"round": r, "rps": rps, "p50_ms": p50, "p99_ms": p50 * 2} for r, rps, p50 in rows]
        for c, rows in pairs.items()
    }


def test_medians_paired_added_latency_and_ratios() -> None:
    subjects = {
        "1": {"runs": _runs({"1": [(0, 1000, 1.0), (1, 900, 2.0), (2, 950, 1.5)]})},
        "3": {"runs": _runs({"1": [(0, 400, 1.5), (1, 300, 2.75), (2, 500, 1.75)], "8": [(0, 800, 5.0)]})},
        "5": {"runs": _runs({"1": [(0, 200, 1.25), (1, 100, 2.5), (2, 300, 1.5)], "8": [(0, 200, 9.0)]})},
    }
    summary = report.summarize(subjects)
    assert summary["3"]["1"]["rps"] == 400
    assert summary["3"]["1"]["p50_ms"] == 1.75
    added = report.added_p50(subjects)
    assert added["1"] == 0
    assert added["3"] == pytest.approx(0.5)  # per-round differences 0.5, 0.75, 0.25
    assert added["5"] == pytest.approx(0.25)  # 0.25, 0.5, 0.0
    ratios = report.ratios(summary)
    assert ratios["(5)/(3)"]["1"] == pytest.approx(0.5)
    assert ratios["(5)/(3)"]["8"] == pytest.approx(0.25)
    assert ratios["(5)/(4)"]["8"] is None  # (4) not measured


def test_targets_report_met_missed_and_unmeasured() -> None:
    results = {
        "summary": {"5": {"8": {"rps": 600.0, "cpu_ms_per_req": 0.4}}, "3": {"8": {"rps": 1000.0}}},
        "ratios": {"(5)/(3)": {"8": 0.6}, "(7)/(2)": {"8": 0.5}},
        "added_p50_ms_c1": {"5": 0.7},
        "servers": {"gp_direct": {"startup_median_s": 0.9, "rss_idle_mb": 60.0}},
    }
    got = {t["target"].split(" ")[0] + t["target"].split(" ")[1]: t["met"] for t in report.targets(results)}
    assert got["(5)/(3)req/s"] is True
    assert got["(7)/(2)req/s"] is False
    assert got["(5)/(4)req/s"] is None
    assert got["(5)added"] is False
    assert got["(5)CPU"] is True


def test_recording_cost_pairs_cpu_of_5_and_5n_by_round() -> None:
    def runs(cpu: list[float]) -> dict[str, list[dict[str, float]]]:
        return {"8": [{"round": r, "rps": 1000.0, "cpu_ms_per_req": c} for r, c in enumerate(cpu)]}

    subjects = {"5": {"runs": runs([0.80, 0.90, 0.70])}, "5n": {"runs": runs([0.78, 0.86, 0.72])}}
    cost = report.recording_cost(subjects, report.summarize(subjects))
    assert cost["8"]["failures_ms"] == pytest.approx(0.80)
    assert cost["8"]["none_ms"] == pytest.approx(0.78)
    assert cost["8"]["paired_diff_us"] == pytest.approx(20.0)  # per round +20, +40, -20
    assert cost["8"]["ratio"] == pytest.approx(0.80 / 0.78)
    assert report.recording_cost({"5": subjects["5"]}, report.summarize({"5": subjects["5"]})) == {}


def test_run_duration_stretches_for_slow_subjects_up_to_the_cap() -> None:
    assert rounds.duration(2, 64, 5000.0, cap=5) == 2
    assert rounds.duration(2, 64, 20.0, cap=5) == 5
    assert rounds.duration(2, 64, 50.0, cap=10) == 3
    assert rounds.duration(2, 8, None, cap=5) == 5


def test_rendered_tables_name_failed_subjects() -> None:
    results = {
        "meta": {"other_load_cores_median": 0.0, "cpus": 2},
        "subjects": {
            "1": {"title": "floor", "server": "mock", "status": "ok", "runs": _runs({"1": [(0, 10, 1)]})},
            "4": {"title": "peer", "server": "litellm", "status": "failed", "error": "start-up: boom"},
        },
        "servers": {"mock": {"startup_median_s": 0.5, "rss_idle_mb": 30.0}},
    }
    results["summary"] = report.summarize(results["subjects"])
    results["added_p50_ms_c1"] = report.added_p50(results["subjects"])
    results["ratios"] = report.ratios(results["summary"])
    results["targets"] = report.targets(results)
    text = report.render(results)
    assert "FAILED" in text and "start-up: boom" in text
    assert "(1) floor" in text


def test_profile_summary_attributes_self_and_inclusive_time() -> None:
    from bench import profile_cpu

    lines = [
        'process 1:"python -m proxy serve";main (proxy/cli.py:5);handle (proxy/pipeline.py:10);'
        "check (validators/json_schema.py:3) 6",
        'process 1:"python -m proxy serve";main (proxy/cli.py:5);handle (proxy/pipeline.py:10);'
        "send (aiohttp/client.py:9) 3",
        'process 1:"python -m proxy serve";main (proxy/cli.py:5);run (asyncio/runners.py:1) 1',
    ]
    got = profile_cpu.summarize(lines)
    assert got["samples"] == 10
    assert dict(got["areas"]) == {"validators": 0.6, "aiohttp": 0.3, "asyncio": 0.1}
    assert got["self"][0] == ("check (validators/json_schema.py)", 0.6)
    inclusive = dict(got["inclusive_ours"])
    assert inclusive["handle (proxy/pipeline.py)"] == 0.9
    assert "main (proxy/cli.py)" not in inclusive  # 100%: the entry point says nothing


def test_validator_figures_render_as_shares_timings_and_ids() -> None:
    entry = {
        "status": "ok",
        "figures": {
            "ours_made_valid": 0.995,
            "validate_1kb_us": 51.5,
            "ours_missed": ["a/b"],
            "corpus_entries": 577,
            "ours_wrong": [],
        },
    }
    text = report.render_validators(entry)
    assert "99.5%" in text and "52 us" in text and "a/b" in text and "577" in text and "none" in text
    assert "absent" in report.render_validators({"status": "absent"})


def test_the_two_worker_ceiling_counts_the_upstream_and_wrk_on_the_same_cores() -> None:
    """1,000 req/s at 1 ms of our CPU + 0.25 upstream + 0.25 wrk: 2 cores allow 1,333 req/s, i.e. 1.33x."""
    results = {
        "meta": {"cpus": 2},
        "summary": {
            "5": {"8": {"rps": 1000.0, "cpu_ms_per_req": 1.0}},
            "5w2": {
                "8": {
                    "rps": 1300.0,
                    "cpu_ms_per_req": 1.0,
                    "upstream_cpu_ms_per_req": 0.25,
                    "wrk_cores": 0.325,
                }
            },
            "3": {"8": {"rps": 2000.0}},
        },
        "ratios": {"(5w2)/(5)": {"8": 1.3}},
        "added_p50_ms_c1": {"3": 0.4, "5": 0.7},
        "servers": {},
    }
    bounds = {t["target"].split(" ")[0]: t["bound"] for t in report.targets(results) if t["bound"]}
    assert bounds == {"(5w2)/(5)": "<= 1.33 (cores)", "(5)": ">= 0.40 (forwarder's)"}


def test_the_two_worker_ceiling_is_not_capped_at_two() -> None:
    """Two workers may spend less CPU per request than one (hits did): 1,000 req/s for one, 0.4 ms each
    with two plus wrk's 0.04 ms leaves 2 cores room for 4,545 req/s, 4.55x, not 2x."""
    results = {
        "meta": {"cpus": 2},
        "summary": {
            "7": {"8": {"rps": 1000.0, "cpu_ms_per_req": 0.5}},
            "7w2": {"8": {"rps": 2500.0, "cpu_ms_per_req": 0.4, "wrk_cores": 0.1}},
        },
        "ratios": {"(7w2)/(7)": {"8": 2.5}},
        "added_p50_ms_c1": {},
        "servers": {},
    }
    bounds = {t["target"].split(" ")[0]: t["bound"] for t in report.targets(results) if t["bound"]}
    assert bounds == {"(7w2)/(7)": "<= 4.55 (cores)"}
