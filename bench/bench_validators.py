"""Benchmark of the validators library (issue 3): repair quality on the corpus, and validation speed.

Run: .venv/bin/python -m bench.bench_validators   (prints a table; `run()` returns the figures)

Repair quality, on tests/corpus/corpus.jsonl, for (a) json.loads alone, (b) json-repair alone, (c) ours:
- made valid: the share of REPAIRABLE entries turned into the right document (schema-valid and equal
  to the entry's expected document);
- wrong repairs: the share of ALL entries turned into a schema-valid document that is not the right
  one (for an unrepairable entry any schema-valid result is wrong: the right answer was to refuse).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import json_repair

from bench import bench_large
from validators import Output, RequestContext, check, default_registry, repair
from validators.json_text import Refused, recover_json
from validators.schema_cache import SchemaCache

ROOT = Path(__file__).resolve().parent.parent

CORPUS = ROOT / "tests" / "corpus" / "corpus.jsonl"
SEEDS = ROOT / "tests" / "corpus" / "seeds.json"
_MISSING = object()


def same(a: Any, b: Any) -> bool:
    """Equal as JSON documents: key order ignored, but 1, 1.0 and true kept apart (NaN equals nothing)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def load_corpus() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The corpus entries and the schemas by name."""
    entries = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    seeds = json.loads(SEEDS.read_text(encoding="utf-8"))
    return entries, {name: seed["schema"] for name, seed in seeds.items()}


def by_json_loads(text: str, schema: Any, finish_reason: str | None) -> Any:
    """Method (a): strict json.loads, nothing else."""
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING


def by_json_repair(text: str, schema: Any, finish_reason: str | None) -> Any:
    """Method (b): json-repair alone, as most gateways use it."""
    try:
        value = json_repair.repair_json(text, return_objects=True)
    except Exception:  # noqa: BLE001 - a crash is a failed repair
        return _MISSING
    return _MISSING if value == "" and text.strip() != '""' else value


def by_ours(registry: Any) -> Callable[[str, Any, str | None], Any]:
    """Method (c): validators.repair with the json and json_schema validators."""

    def run(text: str, schema: Any, finish_reason: str | None) -> Any:
        validators = [
            registry.create({"type": "json"}),
            registry.create({"type": "json_schema", "schema": schema}),
        ]
        output = Output(text, finish_reason=finish_reason)
        result = repair(validators, output, RequestContext())
        return _MISSING if result is None or result.output.text is None else json.loads(result.output.text)

    return run


def score(
    method: Callable[[str, Any, str | None], Any],
    entries: list[dict[str, Any]],
    schemas: dict[str, Any],
    cache: SchemaCache,
) -> dict[str, Any]:
    """Right / wrong / refused counts for one method over the corpus."""
    right = wrong = 0
    wrong_ids: list[str] = []
    missed_ids: list[str] = []
    for e in entries:
        value = method(e["text"], schemas[e["schema"]], e.get("finish_reason"))
        valid = value is not _MISSING and cache.get(schemas[e["schema"]]).is_valid(value)
        if e["repairable"] and valid and same(value, e["expected"]):
            right += 1
        elif valid:
            wrong += 1
            wrong_ids.append(e["id"])
        elif e["repairable"]:
            missed_ids.append(e["id"])
    repairable = sum(1 for e in entries if e["repairable"])
    return {
        "made_valid": right / repairable,
        "wrong": wrong / len(entries),
        "right_count": right,
        "wrong_count": wrong,
        "wrong_ids": wrong_ids,
        "missed_ids": missed_ids,
    }


def why_refused(entry: dict[str, Any], schemas: dict[str, Any], registry: Any) -> str:
    """The reason our repair gives up on an entry (for the report)."""
    schema = schemas[entry["schema"]]
    try:
        recovered = recover_json(entry["text"], schema.get("type"))
    except Refused as exc:
        return str(exc)
    validators = [registry.create({"type": "json_schema", "schema": schema})]
    found = check(validators, Output(json.dumps(recovered.value)), RequestContext())
    return "; ".join(v.message for v in found) or "repaired document differs from the expected one"


def _median_us(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _doc_of_size(order: dict[str, Any], target: int) -> dict[str, Any]:
    item = order["items"][0]
    doc = dict(order)
    doc["items"] = []
    while len(json.dumps(doc)) < target:
        doc["items"].append(dict(item, sku=f"SKU-{len(doc['items'])}"))
    return doc


def timings(schemas: dict[str, Any]) -> dict[str, float]:
    """Median microseconds: schema validation of 1 KB and 100 KB documents, pii over 10 KB of text."""
    registry = default_registry(plugins=False)
    seeds = json.loads(SEEDS.read_text(encoding="utf-8"))
    schema = schemas["ecommerce_order"]
    validator = registry.create({"type": "json_schema", "schema": schema})
    ctx = RequestContext()
    out: dict[str, float] = {}
    compiled = registry.schema_cache.get(schema)
    for label, size, repeat in (("validate_1kb_us", 1_000, 2000), ("validate_100kb_us", 100_000, 30)):
        text = json.dumps(_doc_of_size(seeds["ecommerce_order"]["docs"][0], size))
        assert not validator.check(Output(text), ctx)
        out[label] = _median_us(lambda t=text: validator.check(Output(t), ctx), repeat)
        doc = json.loads(text)
        out[label.replace("_us", "_schema_only_us")] = _median_us(lambda d=doc: compiled.is_valid(d), repeat)
        out[label.replace("validate", "jsonschema")] = _median_us(
            lambda d=doc: compiled.validator.is_valid(d), max(5, repeat // 10)
        )
    pii = registry.create({"type": "pii"})
    para = (
        "Our team met on Tuesday to review the quarterly numbers. Contact jane.doe@example.com or call "
        "+1 415 555 2671 about invoice 4021; the server at 10.0.12.7 is being retired. "
    )
    text = (para * (10_000 // len(para) + 1))[:10_000]
    out["pii_10kb_us"] = _median_us(lambda: pii.check(Output(text), ctx), 50)
    clean = ("The quarterly review covered hiring, the roadmap and the budget for next year. " * 130)[:10_000]
    out["pii_10kb_clean_us"] = _median_us(lambda: pii.check(Output(clean), ctx), 50)
    large = bench_large.run(repeats=15)  # issue 20: proxy.judge on ~100 KB, 20-property schema
    out["judge_100kb_20props_us"] = large["judge_default_ms"] * 1000
    out["judge_100kb_20props_pii_redact_us"] = large["judge_pii-redact_ms"] * 1000
    return out


def run() -> dict[str, Any]:
    """Compute every figure, print the table, return the figures."""
    entries, schemas = load_corpus()
    cache = SchemaCache()
    registry = default_registry(plugins=False)
    methods = {"json.loads": by_json_loads, "json-repair": by_json_repair, "ours": by_ours(registry)}
    results = {name: score(fn, entries, schemas, cache) for name, fn in methods.items()}
    speed = timings(schemas)
    repairable = sum(1 for e in entries if e["repairable"])
    print(f"corpus: {len(entries)} entries, {repairable} repairable, {len(schemas)} schemas")
    print(f"{'method':<12} {'made valid (of repairable)':>28} {'wrong repairs (of all)':>24}")
    for name, r in results.items():
        made = f"{r['made_valid']:.1%} ({r['right_count']})"
        bad = f"{r['wrong']:.1%} ({r['wrong_count']})"
        print(f"{name:<12} {made:>28} {bad:>24}")
    print("median microseconds (parse + validate; in brackets: schema check only | plain jsonschema):")
    for size in ("1kb", "100kb"):
        print(
            f"  validate {size}: {speed[f'validate_{size}_us']:.0f} "
            f"[{speed[f'validate_{size}_schema_only_us']:.0f} | {speed[f'jsonschema_{size}_us']:.0f}]"
        )
    print(
        f"  pii on 10 KB: {speed['pii_10kb_us']:.0f} (dense: ~190 findings), "
        f"{speed['pii_10kb_clean_us']:.0f} (no findings)"
    )
    print(
        f"  judge 100 KB, 20-property schema: {speed['judge_100kb_20props_us']:.0f} (default policy), "
        f"{speed['judge_100kb_20props_pii_redact_us']:.0f} (pii-redact)"
    )
    ours = results["ours"]
    by_id = {e["id"]: e for e in entries}
    for missed in ours["missed_ids"]:
        print(f"ours, not repaired: {missed}: {why_refused(by_id[missed], schemas, registry)}")
    if ours["wrong_ids"]:
        print("ours, WRONG repairs:", ", ".join(ours["wrong_ids"]))
    return {
        "corpus_entries": len(entries),
        "repairable": repairable,
        **{f"{n}_made_valid": r["made_valid"] for n, r in results.items()},
        **{f"{n}_wrong": r["wrong"] for n, r in results.items()},
        "ours_missed": ours["missed_ids"],
        "ours_wrong_ids": ours["wrong_ids"],
        **speed,
    }


if __name__ == "__main__":
    run()
