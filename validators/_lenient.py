"""A lenient JSON reader that accepts only the listed defect classes and names each one it meets.

It vets json-repair (see `json_text`). Anything outside its list (a cut inside a string or number, a
dangling comma, a bare word, mismatched brackets, a duplicate key) is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Reading", "Refused", "read_value"]

_WS = " \t\n\r\ufeff"
_DIGITS = frozenset("0123456789")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "'": "'"}
_CLOSERS = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}
_JSON_WORDS = {"true": True, "false": False, "null": None, "NaN": math.nan, "Infinity": math.inf}
_PYTHON_WORDS = {"True": True, "False": False, "None": None}
_MAX_DEPTH = 200
# How a value ended: complete, cut right after a number (may be incomplete), or left open at the end.
DONE, NUMBER_AT_END, OPEN = "done", "number_at_end", "open"


class Refused(ValueError):
    """The text needs a repair outside the accepted classes, or is ambiguous.

    `items_read` counts the container items read before the refusal: more than zero means the text
    really was JSON (not a stray brace in prose).
    """

    def __init__(self, message: str, items_read: int = 0) -> None:
        super().__init__(message)
        self.items_read = items_read


class _Reader:
    def __init__(self, text: str, start: int) -> None:
        self.s = text
        self.i = start
        self.changes: dict[str, None] = {}
        self.raw_controls: list[int] = []
        self.items_read = 0

    def note(self, change: str) -> None:
        self.changes.setdefault(change, None)

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def skip(self) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in _WS:
                self.i += 1
            elif s.startswith("//", self.i) or c == "#":
                end = s.find("\n", self.i)
                self.i = len(s) if end == -1 else end
                self.note("comments")
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end == -1:
                    raise Refused("the output ends inside a comment")
                self.i = end + 2
                self.note("comments")
            else:
                return

    def value(self, depth: int) -> tuple[Any, str]:
        if depth > _MAX_DEPTH:
            raise Refused("the document is nested too deeply")
        self.skip()
        if self.at_end():
            raise Refused("the output ends where a value was expected")
        c = self.s[self.i]
        if c == "{":
            return self.obj(depth)
        if c == "[":
            return self.array(depth)
        if c in _CLOSERS:
            return self.string(), DONE
        if c == "-" or c in _DIGITS:
            if self.s.startswith("-Infinity", self.i):
                self.i += len("-Infinity")
                return -math.inf, DONE
            return self.number()
        word = self.word()
        if word in _PYTHON_WORDS:
            self.note("python_literals")
            return _PYTHON_WORDS[word], DONE
        if word in _JSON_WORDS:
            return _JSON_WORDS[word], DONE
        raise Refused(f"unquoted text {word[:30]!r} where a value was expected")

    def word(self) -> str:
        s, j = self.s, self.i
        while j < len(s) and (s[j].isalnum() or s[j] in "_$"):
            j += 1
        if j == self.i:
            raise Refused(f"unexpected {s[self.i]!r} where a value was expected")
        word, self.i = s[self.i : j], j
        return word

    def number(self) -> tuple[Any, str]:
        s, j = self.s, self.i
        if s[j] == "-":
            j += 1
        k = j
        while k < len(s) and s[k] in _DIGITS:
            k += 1
        if k == j or (s[j] == "0" and k - j > 1):
            raise Refused("a number is malformed")
        is_float = False
        if k < len(s) and s[k] == ".":
            k, is_float = self._digits(k + 1), True
        if k < len(s) and s[k] in "eE":
            k = k + 1 + (k + 1 < len(s) and s[k + 1] in "+-")
            k, is_float = self._digits(k), True
        if k < len(s) and (s[k].isalnum() or s[k] in "._"):
            raise Refused("a number is malformed")
        text, self.i = s[self.i : k], k
        value = float(text) if is_float else int(text)
        return value, (NUMBER_AT_END if k == len(s) else DONE)

    def _digits(self, j: int) -> int:
        k = j
        while k < len(self.s) and self.s[k] in _DIGITS:
            k += 1
        if k == j:
            raise Refused("a number is malformed or cut")
        return k

    def string(self) -> str:
        s = self.s
        opener = s[self.i]
        closer = _CLOSERS[opener]
        if opener == "'":
            self.note("single_quotes")
        elif opener != '"':
            self.note("smart_quotes")
        self.i += 1
        out: list[str] = []
        while self.i < len(s):
            c = s[self.i]
            if c == "\\":
                out.append(self.escape())
                continue
            self.i += 1
            if c == closer or (opener == "\u201c" and c == opener):
                if self._closes():
                    return "".join(out)
                self.note("unescaped_quote")
            elif ord(c) < 0x20:
                self.note("unescaped_newline" if c in "\n\r" else "control_char")
                self.raw_controls.append(self.i - 1)
            out.append(c)
        raise Refused("the output ends inside a string")

    def _closes(self) -> bool:
        """A quote closes its string when what follows can follow a string (else it is text)."""
        s, j = self.s, self.i
        while j < len(s) and s[j] in _WS:
            j += 1
        if j >= len(s) or s[j] in ",:}]" or s.startswith(("//", "/*", "#"), j):
            return True
        return s[j] in _CLOSERS and "\n" in s[self.i : j]

    def escape(self) -> str:
        s, i = self.s, self.i
        if i + 1 >= len(s):
            raise Refused("the output ends inside an escape sequence")
        c = s[i + 1]
        if c == "'":
            self.note("escaped_apostrophe")
        if c in _ESCAPES:
            self.i = i + 2
            return _ESCAPES[c]
        if c != "u":
            raise Refused(f"invalid escape sequence \\{c}")
        code = s[i + 2 : i + 6]
        if len(code) < 4 or any(ch not in "0123456789abcdefABCDEF" for ch in code):
            raise Refused("invalid or cut \\u escape")
        self.i = i + 6
        point = int(code, 16)
        if 0xD800 <= point < 0xDC00 and s.startswith("\\u", self.i):
            low = s[self.i + 2 : self.i + 6]
            if (
                len(low) == 4
                and all(ch in "0123456789abcdefABCDEF" for ch in low)
                and 0xDC00 <= int(low, 16) < 0xE000
            ):
                self.i += 6
                return chr(0x10000 + ((point - 0xD800) << 10) + (int(low, 16) - 0xDC00))
        return chr(point)

    def after_item(self, kind: str, closer: str) -> str:
        """What follows an item: ',' / the closer / a missing comma / the end of the output."""
        self.items_read += 1
        if kind == OPEN:
            return OPEN
        self.skip()
        if self.at_end():
            if kind == NUMBER_AT_END:
                raise Refused("the output ends right after a number, which may be cut")
            self.note("truncated")
            return OPEN
        c = self.s[self.i]
        if c == ",":
            self.i += 1
            return ","
        if c == closer:
            self.i += 1
            return DONE
        if c in _CLOSERS or c in "{[-" or c.isalnum():
            self.note("missing_comma")
            return ","
        raise Refused(f"unexpected {c!r} after an item (expected ',' or {closer!r})")

    def before_item(self, closer: str, after_comma: bool) -> bool:
        """Skip to the next item; True when the container closes here."""
        self.skip()
        if self.at_end():
            raise Refused("the output ends after an opening bracket or a comma")
        c = self.s[self.i]
        if c == closer:
            if after_comma:
                self.note("trailing_comma")
            self.i += 1
            return True
        if c == ",":
            raise Refused("an empty item (two commas in a row, or a leading comma)")
        return False

    def obj(self, depth: int) -> tuple[Any, str]:
        self.i += 1
        out: dict[str, Any] = {}
        after_comma = False
        while not self.before_item("}", after_comma):
            key = self.key()
            if key in out:
                raise Refused(f"duplicate key {key[:30]!r}")
            self.skip()
            if self.at_end() or self.s[self.i] != ":":
                raise Refused(f"no ':' after the key {key[:30]!r}")
            self.i += 1
            out[key], kind = self.value(depth + 1)
            state = self.after_item(kind, "}")
            if state in (OPEN, DONE):
                return out, state
            after_comma = True
        return out, DONE

    def key(self) -> str:
        if self.s[self.i] in _CLOSERS:
            return self.string()
        word = self.word()
        self.note("unquoted_key")
        return word

    def array(self, depth: int) -> tuple[Any, str]:
        self.i += 1
        out: list[Any] = []
        after_comma = False
        while not self.before_item("]", after_comma):
            item, kind = self.value(depth + 1)
            out.append(item)
            state = self.after_item(kind, "]")
            if state in (OPEN, DONE):
                return out, state
            after_comma = True
        return out, DONE


@dataclass(frozen=True)
class Reading:
    """One value read: where it ends, the changes it needed, raw control characters inside its strings."""

    value: Any
    end: int
    changes: tuple[str, ...]
    raw_controls: tuple[int, ...]


def read_value(text: str, start: int = 0) -> Reading:
    """Read one JSON-ish value at `start`; raise Refused."""
    reader = _Reader(text, start)
    try:
        value, _ = reader.value(0)
    except Refused as exc:
        raise Refused(str(exc), reader.items_read) from None
    return Reading(value, reader.i, tuple(reader.changes), tuple(reader.raw_controls))
