"""Unicode folding for phrase matching, with a map back to positions in the original text."""

from __future__ import annotations

import unicodedata

# Look-alike letters folded to Latin (Cyrillic, Greek, a few IPA/Latin variants), after casefolding.
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "с": "c",
        "ԁ": "d",
        "е": "e",
        "ё": "e",
        "һ": "h",
        "н": "h",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "к": "k",
        "ӏ": "l",
        "м": "m",
        "п": "n",
        "о": "o",
        "р": "p",
        "ԛ": "q",
        "г": "r",
        "ѕ": "s",
        "т": "t",
        "ц": "u",
        "ѵ": "v",
        "ԝ": "w",
        "х": "x",
        "у": "y",
        "з": "3",
        "α": "a",
        "β": "b",
        "ϲ": "c",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "γ": "y",
        "ɑ": "a",
        "ɡ": "g",
        "ı": "i",
        "ȷ": "j",
        "ℓ": "l",
    }
)
_INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff")
_PLAIN_SPACE = frozenset("\t\n\r\x0b\x0c")


def fold(text: str) -> tuple[str, list[int] | None]:
    """Fold `text` for matching; return it and, unless identity, each folded char's index in `text`.

    Folding: compatibility decomposition (full-width, ligatures, math letters), accents and invisible
    characters dropped, case folded, look-alike letters mapped to Latin, whitespace runs made one space.
    """
    if text.isascii() and "  " not in text and not any(c in _PLAIN_SPACE for c in text):
        return text.lower(), None
    out: list[str] = []
    index: list[int] = []
    prev_space = False
    for i, ch in enumerate(text):
        if ch in _INVISIBLE:
            continue
        for part in unicodedata.normalize("NFKD", ch):
            if unicodedata.combining(part):
                continue
            for c in part.casefold().translate(_CONFUSABLES):
                if c.isspace():
                    if prev_space:
                        continue
                    c, prev_space = " ", True
                else:
                    prev_space = False
                out.append(c)
                index.append(i)
    return "".join(out), index


def fold_phrase(phrase: str) -> str:
    """The folded form of a configured phrase, trimmed."""
    return fold(phrase)[0].strip()


def find_phrase(folded: str, index: list[int] | None, phrase: str) -> list[tuple[int, int]]:
    """Raw (start, end) spans of whole-word occurrences of a folded `phrase` in a folded text."""
    spans: list[tuple[int, int]] = []
    n = len(phrase)
    pos = folded.find(phrase)
    while pos != -1:
        before = folded[pos - 1] if pos > 0 else " "
        after = folded[pos + n] if pos + n < len(folded) else " "
        if not (before.isalnum() and phrase[0].isalnum()) and not (after.isalnum() and phrase[-1].isalnum()):
            if index is None:
                spans.append((pos, pos + n))
            else:
                spans.append((index[pos], index[pos + n - 1] + 1))
        pos = folded.find(phrase, pos + 1)
    return spans
