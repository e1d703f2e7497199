"""Hand-written corpus entries: real-world failure shapes seen in model outputs and json-repair reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_SEEDS = json.loads((Path(__file__).resolve().parent / "seeds.json").read_text(encoding="utf-8"))


def _doc(schema: str, i: int = 0) -> Any:
    return _SEEDS[schema]["docs"][i]


def _j(value: Any, indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False)


def _entry(name: str, schema: str, text: str, expected: Any) -> dict[str, Any]:
    return {
        "id": f"{schema}/hand:{name}",
        "schema": schema,
        "defect": f"hand:{name}",
        "text": text,
        "repairable": expected is not None,
        "expected": expected,
    }


_code = {
    "file": "src/registry.ts",
    "language": "typescript",
    "patched_code": "x\nrollback: (registry: Registry, snapshot: EntitySnapshot) => void;",
    "issues": [],
    "approved": True,
}
_py_code = {
    "file": "tools/f.py",
    "language": "python",
    "patched_code": 'def f(x):\n    return {"a": x}\n',
    "issues": [{"line": 2, "severity": "info", "message": "Fine."}],
    "approved": True,
}
_faq_code = {
    "answer": "Run:\n```bash\nmake test\n```\nthen open the report.",
    "sources": [],
    "follow_up_questions": [],
    "confidence": "high",
}
_tabbed = {"label": "neutral", "confidence": 0.5, "rationale": "Columns:\tname\tprice"}
_apostrophe = {"label": "negative", "confidence": 0.9, "rationale": "It's broken and the seller won't reply."}

HANDWRITTEN: list[dict[str, Any]] = [
    # json-repair issue #200: a multi-line code string json-repair could split into keys.
    _entry(
        "code_string_raw_newline",
        "code_review",
        '{"file": "src/registry.ts", "language": "typescript", "patched_code": "x\nrollback: (registry: '
        'Registry, snapshot: EntitySnapshot) => void;", "issues": [], "approved": true}',
        _code,
    ),
    # json-repair dropped the trailing newline of a raw multi-line string.
    _entry(
        "code_trailing_newline",
        "code_review",
        '{"file": "tools/f.py", "language": "python", '
        '"patched_code": "def f(x):\n    return {\\"a\\": x}\n", '
        '"issues": [{"line": 2, "severity": "info", "message": "Fine."}], "approved": true}',
        _py_code,
    ),
    # json-repair issue #80: fenced output whose last brace never came.
    _entry(
        "fence_missing_brace",
        "faq_answer",
        "```json\n" + _j(_doc("faq_answer", 1))[:-2] + "\n```",
        _doc("faq_answer", 1),
    ),
    # json-repair issue #133: a superfluous quote inside a value; nobody can tell where the string ends.
    _entry(
        "superfluous_quote",
        "sentiment",
        '{\n  "label": "mixed",\n  "confidence": 0.5,\n  '
        '"rationale": "Hits include:\n- "Josephine"\n- "Tell Me '
        'There\'s "a Heaven",\n- "Julia".",\n  "source": "review"\n}',
        None,
    ),
    _entry(
        "draft_then_correction",
        "weather_args",
        _j(_doc("weather_args", 0), None) + "\n\nActually, correction:\n" + _j(_doc("weather_args", 1), None),
        None,
    ),
    _entry("python_dict_apostrophe", "sentiment", repr(_apostrophe), _apostrophe),
    _entry(
        "json_word_prefix",
        "support_ticket",
        "json\n" + _j(_doc("support_ticket", 0)),
        _doc("support_ticket", 0),
    ),
    _entry(
        "brackets_in_explanation",
        "sentiment",
        _j(_doc("sentiment", 1)) + "\n\n(Confidence is on a [0, 1] scale.)",
        _doc("sentiment", 1),
    ),
    _entry(
        "second_fence_is_code",
        "person_extraction",
        "```json\n"
        + _j(_doc("person_extraction", 0))
        + "\n```\n\nUsage:\n```python\nprint(data['name'])\n```",
        _doc("person_extraction", 0),
    ),
    _entry(
        "word_processor_quotes",
        "sentiment",
        "{\u201clabel\u201d: \u201cmixed\u201d, \u201cconfidence\u201d: 0.55, "
        "\u201crationale\u201d: \u201cPraises "
        "the screen, complains about the price.\u201d}",
        _doc("sentiment", 1),
    ),
    _entry(
        "unicode_escapes_trailing_comma",
        "translation",
        '{"source_lang": "en", "target_lang": "fr", "segments": [{"source": "Where is the station?", '
        '"target": "O\\u00f9 est la gare ?"}, {"source": "It\'s on the left.", "target": "C\'est \\u00e0 '
        'gauche."},],}',
        _doc("translation", 0),
    ),
    _entry(
        "raw_tab_in_string",
        "sentiment",
        '{"label": "neutral", "confidence": 0.5, "rationale": "Columns:\tname\tprice"}',
        _tabbed,
    ),
    _entry(
        "closing_fence_only", "weather_args", _j(_doc("weather_args", 1)) + "\n```", _doc("weather_args", 1)
    ),
    _entry(
        "single_backticks",
        "weather_args",
        "Output: `" + _j(_doc("weather_args", 0), None) + "`",
        _doc("weather_args", 0),
    ),
    _entry(
        "thousands_separator",
        "invoice_defs",
        _j(_doc("invoice_defs", 0)).replace('"amount": 1395', '"amount": "1,395"'),
        None,
    ),
    _entry(
        "yes_for_boolean",
        "weather_args",
        _j(_doc("weather_args", 0)).replace('"include_hourly": false', '"include_hourly": "no"'),
        None,
    ),
    _entry(
        "nested_string_types",
        "ecommerce_order",
        _j(_doc("ecommerce_order", 0))
        .replace('"quantity": 2', '"quantity": "2"')
        .replace('"unit_price": 24.5', '"unit_price": "24.50"')
        .replace('"total": 178.99', '"total": "178.99",\n  "notes": "gift wrap"'),
        _doc("ecommerce_order", 0),
    ),
    _entry(
        "array_for_scalar", "sentiment", _j(_doc("sentiment", 0)).replace('"negative"', '["negative"]'), None
    ),
    _entry(
        "refusal_prose",
        "person_extraction",
        "I'm sorry, but I can't extract personal data from that text.",
        None,
    ),
    _entry("empty_output", "sentiment", "", None),
    _entry(
        "xml_tags", "lead_form", "<json>\n" + _j(_doc("lead_form", 1)) + "\n</json>", _doc("lead_form", 1)
    ),
    _entry(
        "thinking_with_braces",
        "weather_args",
        "<think>The user wants {city, unit}; days defaults to 3.</think>\n" + _j(_doc("weather_args", 0)),
        _doc("weather_args", 0),
    ),
    _entry(
        "urls_and_comments",
        "faq_answer",
        "{\n  // answer for the refund question\n  " + _j(_doc("faq_answer", 1))[1:-2] + ",\n}",
        _doc("faq_answer", 1),
    ),
    _entry(
        "hash_comments",
        "weather_args",
        '{\n  "city": "Lisbon",  # resolved from "Lisboa"\n  "unit": "celsius",\n  "days": 3,\n'
        '  "include_hourly": false\n}',
        _doc("weather_args", 0),
    ),
    _entry("fence_inside_string", "faq_answer", "```json\n" + _j(_faq_code) + "\n```", _faq_code),
    _entry("citation_before_array", "product_list", "Products [1]:\n" + _j(_doc("product_list", 1)), None),
    _entry("truncated_after_key", "resume", _j(_doc("resume", 1))[:-60].rsplit('"', 1)[0] + '"', None),
    _entry(
        "apostrophe_single_quoted",
        "translation",
        "{'source_lang': 'en', 'target_lang': 'fr', 'segments': [{'source': 'It's on the left.', "
        "'target': 'C'est à gauche.'}]}",
        None,
    ),
    _entry(
        "bom_and_crlf",
        "weather_args",
        "\ufeff" + _j(_doc("weather_args", 1)).replace("\n", "\r\n")[:-1] + ",}",
        _doc("weather_args", 1),
    ),
]
