"""Property tests of JSON syntax repair: every listed defect is undone exactly; cuts inside values refuse."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from validators.json_text import Refused, recover_json
from validators.json_text import _same as same  # deep equality telling 1 from 1.0 from True

_spec = importlib.util.spec_from_file_location(
    "corpus_emit", Path(__file__).parents[1] / "corpus" / "_emit.py"
)
assert _spec is not None and _spec.loader is not None
emit_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(emit_module)
emit = emit_module.emit

text_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | text_values
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text_values, inner, max_size=4),
    max_leaves=12,
).filter(lambda d: isinstance(d, (dict, list)))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(documents, st.sampled_from(["trailing", "single", "smart", "comments", "bare_keys", "fence", "prose"]))
def test_each_defect_is_undone_exactly(doc: Any, defect: str) -> None:
    text = {
        "trailing": lambda: emit(doc, indent=2, trailing_commas=True),
        "single": lambda: emit(doc, indent=None, quote="'"),
        "smart": lambda: emit(doc, indent=None, quote="smart"),
        "comments": lambda: emit(doc, indent=2, comments=True),
        "bare_keys": lambda: emit(doc, indent=2, quote_keys=False),
        "fence": lambda: "```json\n" + json.dumps(doc, indent=2, ensure_ascii=False) + "\n```",
        "prose": lambda: "Here you go:\n" + json.dumps(doc, ensure_ascii=False) + "\nHope that helps.",
    }[defect]()
    assert same(recover_json(text).value, doc)


@SETTINGS
@given(documents)
def test_raw_newlines_inside_strings_are_kept(doc: Any) -> None:
    text = emit(doc, indent=2, raw_newlines=True)
    assert same(recover_json(text).value, doc)


def _token_spans(text: str) -> list[tuple[int, int]]:
    """Spans of string and number tokens in canonical json.dumps output."""
    spans, i = [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            spans.append((i, j + 1))
            i = j + 1
        elif c == "-" or c.isdigit():
            j = i
            while j < len(text) and (text[j].isdigit() or text[j] in "-+.eE"):
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


@SETTINGS
@given(documents, st.data())
def test_a_cut_inside_a_string_or_number_is_refused(doc: Any, data: st.DataObject) -> None:
    text = json.dumps(doc, ensure_ascii=False)
    inside = [(s, e) for s, e in _token_spans(text) if e - s >= 2]
    if not inside:
        return
    start, end = data.draw(st.sampled_from(inside))
    cut = data.draw(st.integers(start + 1, end - 1))
    try:
        recovered = recover_json(text[:cut])
    except Refused:
        return
    raise AssertionError(f"accepted a cut value: {text[:cut]!r} -> {recovered.value!r}")


@SETTINGS
@given(documents, documents)
def test_two_documents_are_refused(first: Any, second: Any) -> None:
    text = json.dumps(first) + "\n" + json.dumps(second)
    try:
        recover_json(text)
    except Refused:
        return
    raise AssertionError("accepted two documents")


json_ish = st.text(
    alphabet=st.sampled_from(list("{}[]:,\"'\u201c\u201d \n\\/#*-.0123456789eEtrufalsnNIyTFx`")), max_size=60
)


@SETTINGS
@given(json_ish | st.text(max_size=60))
def test_any_text_is_read_or_refused_never_crashes(text: str) -> None:
    try:
        recover_json(text)
    except Refused:
        pass
