"""The broken-output corpus: its shape, and the repair verdict on every entry."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from validators import Output, Registry, RequestContext, SchemaCache, repair

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
ENTRIES = [
    json.loads(line) for line in (CORPUS_DIR / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
]
SCHEMAS = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (CORPUS_DIR / "schemas").glob("*.json")}
DEFECT_CLASSES = {
    "fence",
    "fence_no_tag",
    "prose_before",
    "trailing_explanation",
    "markdown_answer",
    "trailing_comma",
    "single_quotes",
    "comments",
    "python_literals",
    "unescaped_newlines",
    "truncated_closers",
    "numeric_strings",
    "boolean_strings",
    "scalar_for_array",
    "extra_fields",
    "missing_required_with_default",
    "missing_required",
    "enum_case",
    "smart_quotes",
    "nan_nullable",
    "nan_not_nullable",
    "two_documents",
    "draft_then_answer",
    "cut_mid_string",
    "cut_mid_nested_array",
    "cut_after_comma",
    "cut_mid_number",
    "double_encoded",
}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_corpus_is_large_and_varied() -> None:
    assert len(ENTRIES) >= 300
    assert len({e["schema"] for e in ENTRIES}) >= 15
    assert len({e["id"] for e in ENTRIES}) == len(ENTRIES)
    defects = Counter(e["defect"] for e in ENTRIES)
    assert DEFECT_CLASSES <= set(defects)
    assert sum(e["repairable"] for e in ENTRIES) >= 200
    schemas = json.dumps(SCHEMAS)
    assert '"$defs"' in schemas and '"anyOf"' in schemas and '"null"' in schemas and '"enum"' in schemas


def test_every_entry_states_a_verdict_that_holds() -> None:
    cache = SchemaCache()
    for e in ENTRIES:
        compiled = cache.get(SCHEMAS[e["schema"]])
        if e["repairable"]:
            assert compiled.is_valid(e["expected"]), e["id"]
        else:
            assert e["expected"] is None, e["id"]
        try:
            as_is = json.loads(e["text"])
        except ValueError:
            continue
        assert not compiled.is_valid(as_is) or "NaN" in e["text"], e["id"]  # every entry is broken as given


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Any]:
    from validators import default_registry

    registry: Registry = default_registry(plugins=False)
    out: dict[str, Any] = {}
    for e in ENTRIES:
        validators = [
            registry.create({"type": "json"}),
            registry.create({"type": "json_schema", "schema": SCHEMAS[e["schema"]]}),
        ]
        result = repair(validators, Output(e["text"], finish_reason=e["finish_reason"]), RequestContext())
        out[e["id"]] = None if result is None else json.loads(result.output.text or "null")
    return out


def test_repair_never_produces_a_wrong_document(verdicts: dict[str, Any]) -> None:
    wrong = [
        e["id"]
        for e in ENTRIES
        if verdicts[e["id"]] is not None and not (e["repairable"] and _same(verdicts[e["id"]], e["expected"]))
    ]
    assert wrong == []


def test_repair_fixes_at_least_95_percent_of_repairable_entries(verdicts: dict[str, Any]) -> None:
    repairable = [e for e in ENTRIES if e["repairable"]]
    fixed = [e for e in repairable if verdicts[e["id"]] is not None]
    assert len(fixed) / len(repairable) >= 0.95, sorted(
        e["id"] for e in repairable if verdicts[e["id"]] is None
    )
