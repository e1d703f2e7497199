"""Build the broken-output corpus: tests/corpus/corpus.jsonl and tests/corpus/schemas/*.json.

Every entry pairs a broken model output with its schema and says whether it is repairable and, if
so, what the right repaired document is. Repairable means the intended document can be known from
the text for certain; a cut inside a value, two different documents, a missing value, or a value of
the wrong kind that cannot be converted exactly are not repairable: the right action is to refuse.

Run: .venv/bin/python tests/corpus/build_corpus.py   (deterministic: same output every run)
"""

from __future__ import annotations

import copy
import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _emit import emit, get_at, paths_of, schema_at, set_at  # noqa: E402
from _handwritten import HANDWRITTEN  # noqa: E402

Entry = dict[str, Any]
Gen = Callable[[Any, dict[str, Any], random.Random, Any], Iterator[tuple[str, str, bool, Any]]]

INTROS = [
    "Here is the extracted data:",
    "Sure! Below is the JSON you asked for.",
    "Based on the {input} you provided, here's the result:",
    "Certainly. I analysed the text and produced the following structured output:",
]
OUTROS = [
    "Let me know if you need anything else!",
    "Note: I inferred some fields from context, so please double-check them.",
    "I hope this helps. The values above follow the requested schema.",
]


def dumps(doc: Any, indent: int | None = 2) -> str:
    return json.dumps(doc, indent=indent, ensure_ascii=False)


# --- repairable defects: (defect, text, repairable, expected) -------------------------------------


def g_fence_json(doc, schema, rng, other):
    yield "fence", f"```json\n{dumps(doc)}\n```", True, doc


def g_fence_bare(doc, schema, rng, other):
    yield "fence_no_tag", f"```\n{dumps(doc, None)}\n```", True, doc


def g_prose_before(doc, schema, rng, other):
    yield "prose_before", f"{rng.choice(INTROS)}\n\n{dumps(doc)}", True, doc


def g_prose_after(doc, schema, rng, other):
    yield "trailing_explanation", f"{dumps(doc, None)}\n\n{rng.choice(OUTROS)}", True, doc


def g_markdown(doc, schema, rng, other):
    text = (
        f"### Result\n\n{rng.choice(INTROS)}\n\n```json\n{dumps(doc)}\n```\n\n"
        f"**Notes**\n- {rng.choice(OUTROS)}\n- Fields follow the requested format."
    )
    yield "markdown_answer", text, True, doc


def g_trailing_comma(doc, schema, rng, other):
    yield "trailing_comma", emit(doc, indent=2, trailing_commas=True), True, doc


def g_single_quotes(doc, schema, rng, other):
    yield "single_quotes", emit(doc, indent=None, quote="'"), True, doc


def g_python_repr(doc, schema, rng, other):
    text = repr(doc)
    if text != dumps(doc, None):
        yield "python_literals", text, True, doc


def g_comments(doc, schema, rng, other):
    yield "comments", emit(doc, indent=2, comments=True), True, doc


def g_raw_newlines(doc, schema, rng, other):
    text = emit(doc, indent=2, raw_newlines=True)
    if text != dumps(doc):
        yield "unescaped_newlines", text, True, doc


def g_smart_quotes(doc, schema, rng, other):
    yield "smart_quotes", emit(doc, indent=None, quote="smart"), True, doc


def g_unquoted_keys(doc, schema, rng, other):
    yield "unquoted_keys", emit(doc, indent=2, quote_keys=False), True, doc


def g_missing_comma(doc, schema, rng, other):
    yield "missing_commas", dumps(doc).replace(",\n", "\n"), True, doc


def g_truncated(doc, schema, rng, other):
    text = dumps(doc)
    cut = text.rstrip("}] \n")
    if cut and cut[-1] in '"}]el':
        yield "truncated_closers", cut, True, doc


def g_wrong_types(doc, schema, rng, other):
    targets = [p for p, v in paths_of(doc) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    bools = [p for p, v in paths_of(doc) if isinstance(v, bool)]
    if targets:
        bad = copy.deepcopy(doc)
        for p in rng.sample(targets, min(2, len(targets))):
            set_at(bad, p, str(get_at(bad, p)))
        yield "numeric_strings", dumps(bad), True, doc
    if bools:
        bad = copy.deepcopy(doc)
        p = rng.choice(bools)
        set_at(bad, p, "true" if get_at(bad, p) else "false")
        yield "boolean_strings", dumps(bad), True, doc


def g_scalar_array(doc, schema, rng, other):
    for p, v in paths_of(doc):
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str):
            bad = copy.deepcopy(doc)
            set_at(bad, p, v[0])
            yield "scalar_for_array", dumps(bad), True, doc
            return


def g_enum_case(doc, schema, rng, other):
    for p, v in paths_of(doc):
        sub = schema_at(schema, p)
        if isinstance(v, str) and isinstance(sub, dict) and "enum" in sub:
            variant = v.upper() if v != v.upper() else v.capitalize()
            if variant != v:
                bad = copy.deepcopy(doc)
                set_at(bad, p, variant)
                yield "enum_case", dumps(bad), True, doc
                return


def g_extra_fields(doc, schema, rng, other):
    if isinstance(doc, dict):
        bad = {**doc, "confidence_note": "high", "_reasoning": "extracted from the second paragraph"}
        yield "extra_fields", dumps(bad), True, doc


def g_default_missing(doc, schema, rng, other):
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    for key, sub in props.items():
        if isinstance(doc, dict) and "default" in sub and doc.get(key) == sub["default"]:
            bad = {k: v for k, v in doc.items() if k != key}
            yield "missing_required_with_default", dumps(bad), True, doc
            return


def g_nan(doc, schema, rng, other):
    done: set[bool] = set()
    for p, v in paths_of(doc):
        sub = schema_at(schema, p)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(sub, dict):
            types = sub.get("type")
            nullable = isinstance(types, list) and "null" in types
            if nullable in done:
                continue
            done.add(nullable)
            bad = copy.deepcopy(doc)
            set_at(bad, p, "@@NAN@@")
            text = dumps(bad).replace('"@@NAN@@"', "NaN")
            if nullable:
                fixed = copy.deepcopy(doc)
                set_at(fixed, p, None)
                yield "nan_nullable", text, True, fixed
            else:
                yield "nan_not_nullable", text, False, None


def g_double_encoded(doc, schema, rng, other):
    yield "double_encoded", json.dumps(dumps(doc, None), ensure_ascii=False), True, doc


def g_inner_quotes(doc, schema, rng, other):
    text = emit(doc, indent=2, escape_inner_quotes=False)
    if text != dumps(doc):
        yield "unescaped_inner_quotes", text, True, doc


def g_combined(doc, schema, rng, other):
    targets = [p for p, v in paths_of(doc) if isinstance(v, int) and not isinstance(v, bool)]
    bad = copy.deepcopy(doc)
    if targets:
        p = rng.choice(targets)
        set_at(bad, p, str(get_at(bad, p)))
    yield "combined", f"Sure!\n```json\n{emit(bad, indent=2, trailing_commas=True)}\n```", True, doc


# --- not repairable: the right action is to refuse ------------------------------------------------


def g_cut_string(doc, schema, rng, other):
    text = dumps(doc)
    strings = [p for p, v in paths_of(doc) if isinstance(v, str) and len(v) >= 8]
    if strings:
        value = get_at(doc, strings[-1])
        token = json.dumps(value, ensure_ascii=False)
        at = text.rfind(token)
        yield "cut_mid_string", text[: at + 1 + len(value) // 2], False, None


def g_cut_after_comma(doc, schema, rng, other):
    text = dumps(doc, None)
    commas = [i for i, c in enumerate(text) if c == "," and _outside_strings(text, i)]
    if len(commas) >= 2:
        yield "cut_after_comma", text[: commas[len(commas) // 2] + 1], False, None


def g_cut_nested_array(doc, schema, rng, other):
    text = dumps(doc)
    arrays = [p for p, v in paths_of(doc) if isinstance(v, list) and len(v) >= 2 and isinstance(v[0], dict)]
    if arrays:
        inner = dumps(get_at(doc, arrays[0]))
        start = text.find(inner)
        second = start + inner.find("},") + 2
        yield "cut_mid_nested_array", text[: second + 10], False, None


def g_cut_number(doc, schema, rng, other):
    text = dumps(doc, None)
    for _, v in paths_of(doc):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and len(str(v)) >= 3:
            token = f": {json.dumps(v)}"
            at = text.find(token)
            if at != -1:
                yield "cut_mid_number", text[: at + 2 + len(str(v)) - 1], False, None
                return


def g_cut_with_length(doc, schema, rng, other):
    text = dumps(doc)
    cut = text.rstrip("}] \n")
    if cut and cut[-1] in '"}]el':
        yield "cut_finish_reason_length", cut, False, None


def g_two_documents(doc, schema, rng, other):
    yield "two_documents", f"{dumps(doc, None)}\n{dumps(other, None)}", False, None
    yield (
        "draft_then_answer",
        f"Draft:\n{dumps(other)}\n\nFinal answer:\n```json\n{dumps(doc)}\n```",
        False,
        None,
    )


def g_missing_required(doc, schema, rng, other):
    required = schema.get("required", []) if isinstance(schema, dict) else []
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    for key in required:
        if "default" not in props.get(key, {}) and isinstance(doc, dict):
            yield "missing_required", dumps({k: v for k, v in doc.items() if k != key}), False, None
            return


def g_uncoercible(doc, schema, rng, other):
    for p, v in paths_of(doc):
        if isinstance(v, int) and not isinstance(v, bool):
            bad = copy.deepcopy(doc)
            set_at(bad, p, "about " + str(v))
            yield "uncoercible_type", dumps(bad), False, None
            return


def g_bad_enum(doc, schema, rng, other):
    for p, v in paths_of(doc):
        sub = schema_at(schema, p)
        if isinstance(v, str) and isinstance(sub, dict) and "enum" in sub:
            bad = copy.deepcopy(doc)
            set_at(bad, p, v + "-ish")
            yield "unknown_enum_value", dumps(bad), False, None
            return


def g_bad_format(doc, schema, rng, other):
    for p, v in paths_of(doc):
        sub = schema_at(schema, p)
        if (
            isinstance(v, str)
            and isinstance(sub, dict)
            and sub.get("format") in ("date", "email", "date-time")
        ):
            bad = copy.deepcopy(doc)
            set_at(
                bad,
                p,
                {"date": "31/02/2024", "email": "not an email", "date-time": "tomorrow 9am"}[sub["format"]],
            )
            yield "invalid_format", dumps(bad), False, None
            return


def g_dropped_item(doc, schema, rng, other):
    if isinstance(doc, dict):
        key = next(
            (k for k, v in doc.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)), None
        )
        if key is not None:
            text = dumps(doc).replace(f'"{key}": {json.dumps(doc[key], ensure_ascii=False)}', f'"{key}": ', 1)
            yield "missing_value", text, False, None


def _outside_strings(text: str, index: int) -> bool:
    inside, escaped = False, False
    for c in text[:index]:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            inside = not inside
    return not inside


GENERATORS: list[Gen] = [
    g_fence_json,
    g_fence_bare,
    g_prose_before,
    g_prose_after,
    g_markdown,
    g_trailing_comma,
    g_single_quotes,
    g_python_repr,
    g_comments,
    g_raw_newlines,
    g_smart_quotes,
    g_unquoted_keys,
    g_missing_comma,
    g_truncated,
    g_wrong_types,
    g_scalar_array,
    g_enum_case,
    g_extra_fields,
    g_default_missing,
    g_nan,
    g_double_encoded,
    g_inner_quotes,
    g_combined,
    g_cut_string,
    g_cut_after_comma,
    g_cut_nested_array,
    g_cut_number,
    g_cut_with_length,
    g_two_documents,
    g_missing_required,
    g_uncoercible,
    g_bad_enum,
    g_bad_format,
    g_dropped_item,
]


def build() -> list[Entry]:
    seeds = json.loads((HERE / "seeds.json").read_text(encoding="utf-8"))
    entries: list[Entry] = []
    seen: set[tuple[str, str, str | None]] = set()
    for name, seed in seeds.items():
        schema, docs = seed["schema"], seed["docs"]
        for g, gen in enumerate(GENERATORS):
            doc, other = docs[g % 2], docs[(g + 1) % 2]
            rng = random.Random(f"{name}:{gen.__name__}")
            # The generator's doc first; the other doc when the first offers nothing to break this way.
            made = list(gen(doc, schema, rng, other)) or list(gen(other, schema, rng, doc))
            for defect, text, repairable, expected in made:
                finish = "length" if defect == "cut_finish_reason_length" else None
                if (name, text, finish) in seen:
                    continue
                seen.add((name, text, finish))
                entries.append(
                    {
                        "id": f"{name}/{defect}",
                        "schema": name,
                        "defect": defect,
                        "text": text,
                        "finish_reason": finish,
                        "repairable": repairable,
                        "expected": expected,
                    }
                )
    for item in HANDWRITTEN:
        entries.append({"finish_reason": None, **item})
    return entries


def main() -> None:
    seeds = json.loads((HERE / "seeds.json").read_text(encoding="utf-8"))
    schema_dir = HERE / "schemas"
    schema_dir.mkdir(exist_ok=True)
    for name, seed in seeds.items():
        (schema_dir / f"{name}.json").write_text(
            json.dumps(seed["schema"], indent=2) + "\n", encoding="utf-8"
        )
    entries = build()
    with (HERE / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    repairable = sum(e["repairable"] for e in entries)
    print(f"{len(entries)} entries ({repairable} repairable) from {len(seeds)} schemas")


if __name__ == "__main__":
    main()
