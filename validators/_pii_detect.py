"""PII and secret detectors: an RE2 pattern per entity plus a check (Luhn, IBAN mod 97, IP parse)."""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from validators._re2 import compile_re2, spans

__all__ = ["DETECTORS", "Detector", "PRIVATE_KEY", "SECRET_TOKENS", "detect", "scan"]


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _luhn(text: str) -> bool:
    digits = _digits(text)
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    if total % 10:
        return False
    return _card_brand_length_ok(digits)


def _card_brand_length_ok(digits: str) -> bool:
    """The number has a known issuer prefix and that issuer's length."""
    n, two, four = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # American Express
    if digits.startswith(("6011", "65", "64", "62", "35")):
        return 16 <= n <= 19  # Discover, UnionPay, JCB
    return two in (30, 36, 38, 39) and 14 <= n <= 19  # Diners Club


def _ssn(text: str) -> bool:
    area, group, serial = text[:3], text[4:6], text[7:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SC": 31,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}


def _iban(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ip(text: str) -> bool:
    if ":" in text and "::" not in text and text.count(":") < 6:
        return False  # not IPv6 (8 groups, or 6 and an IPv4 tail, unless `::`): a time such as 08:00:00
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return ":" not in text or (any(c.isdigit() for c in text) and len(text) >= 3)


def _phone(text: str) -> bool:
    n = len(_digits(text))
    return 10 <= n <= 15 if not text.startswith("+") else 8 <= n <= 15


def _any(text: str) -> bool:
    return True


@dataclass(frozen=True)
class Detector:
    """One entity: its placeholder, an RE2 pattern, a confirmation, and the characters it must not touch."""

    entity: str
    placeholder: str
    pattern: str
    confirm: Callable[[str], bool]
    label: str
    no_touch: str = ""  # a finding preceded or followed by one of these is part of something longer

    def regex(self) -> Any:
        """The compiled pattern."""
        return compile_re2(self.pattern)


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# A key block runs to its END line, or (none yet) over the base64 that follows the header.
PRIVATE_KEY = (
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
    r"|[A-Za-z0-9+/=\s\\]*)"
)
SECRET_TOKENS = (
    r"\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}",
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    r"\bAIza[0-9A-Za-z_\-]{35}",
    r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}",
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
)
_SECRET = "|".join([PRIVATE_KEY, *SECRET_TOKENS])
_IPV6 = r"(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){1,7}(?::(?:\d{1,3}\.){3}\d{1,3})?"

# In priority order: where findings overlap, the earlier entity wins.
DETECTORS: tuple[Detector, ...] = (
    Detector("secret", "[SECRET]", _SECRET, _any, "a secret (API key or private key)"),
    Detector(
        "credit_card", "[CREDIT_CARD]", r"\b\d(?:[ \-]?\d){12,18}\b", _luhn, "a credit card number", "-"
    ),
    Detector("iban", "[IBAN]", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", _iban, "an IBAN"),
    Detector("ssn", "[SSN]", r"\b\d{3}-\d{2}-\d{4}\b", _ssn, "a US social security number", "-"),
    Detector(
        "email",
        "[EMAIL]",
        r"\b[A-Za-z0-9][A-Za-z0-9._%+\-]*@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}\b",
        _any,
        "an email address",
    ),
    Detector(
        "ip_address",
        "[IP_ADDRESS]",
        rf"\b(?:\d{{1,3}}\.){{3}}\d{{1,3}}\b|{_IPV6}",
        _ip,
        "an IP address",
        _ALNUM + ":.",
    ),
    Detector(
        "phone",
        "[PHONE]",
        r"\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}\b"
        r"|(?:\(\d{3}\) ?|\b\d{3}[ .\-])\d{3}[ .\-]\d{4}\b",
        _phone,
        "a phone number",
        _ALNUM + "+-",
    ),
)


def _iban_end(text: str, start: int, end: int) -> int | None:
    """The end of the IBAN at `start`: exactly the country's length of characters, checksum valid."""
    want = _IBAN_LENGTHS.get(text[start : start + 2])
    if want is None:
        return None
    count, i = 0, start
    while i < end and count < want:
        count += text[i] != " "
        i += 1
    return i if count == want and _iban(text[start:i]) else None


def _touches_after(text: str, end: int, det: Detector) -> bool:
    after = text[end : end + 1]
    if not after or after not in det.no_touch:
        return False
    # A '.' or ':' then a space or the end is punctuation closing a sentence, not part of the finding.
    return not (after in ".:" and (end + 1 == len(text) or not text[end + 1].isalnum()))


Finding = tuple[int, int, Detector]


def scan(text: str, entities: frozenset[str]) -> tuple[list[Finding], list[tuple[int, int]]]:
    """`detect`'s findings, and the extent of every raw pattern match (confirmed or not) behind them."""
    found: list[Finding] = []  # sorted by start, never overlapping
    extents: list[tuple[int, int]] = []
    starts: list[int] = []
    for det in DETECTORS:
        if det.entity not in entities:
            continue
        for start, end in spans(det.regex(), text):
            extents.append((start, end))
            if det.entity == "iban":
                iban_end = _iban_end(text, start, end)
                if iban_end is None:
                    continue
                end = iban_end
            else:
                end = start + len(text[start:end].rstrip())
                if end <= start or not det.confirm(text[start:end]):
                    continue
            if det.no_touch and (
                text[start - 1 : start] in tuple(det.no_touch) or _touches_after(text, end, det)
            ):
                continue
            at = bisect.bisect_left(starts, start)
            if (at and found[at - 1][1] > start) or (at < len(found) and found[at][0] < end):
                continue  # overlaps a finding of a higher-priority entity
            starts.insert(at, start)
            found.insert(at, (start, end, det))
    return found, extents


def detect(text: str, entities: frozenset[str]) -> list[Finding]:
    """Non-overlapping findings (start, end, detector) of the chosen entities, in text order."""
    return scan(text, entities)[0]
