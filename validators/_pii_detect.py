"""PII and secret detectors: an RE2 pattern per entity plus a check (Luhn, IBAN mod 97, IP parse)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from validators._re2 import compile_re2

__all__ = ["DETECTORS", "Detector", "detect"]


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
    two, four = int(digits[:2]), int(digits[:4])
    return (digits[0] == "4" or 51 <= two <= 55 or 2221 <= four <= 2720 or two in (34, 37, 36, 38, 30, 35, 62)
            or digits.startswith(("6011", "65", "64")))


def _ssn(text: str) -> bool:
    area, group, serial = text[:3], text[4:6], text[7:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
    "VA": 22, "VG": 24, "XK": 20,
}


def _iban(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ip(text: str) -> bool:
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
    """One entity: its placeholder, an RE2 pattern whose group 1 is the finding, and a confirmation."""

    entity: str
    placeholder: str
    pattern: str
    confirm: Callable[[str], bool]
    label: str

    def regex(self) -> Any:
        """The compiled pattern."""
        return compile_re2(self.pattern)


_NB = r"(?:^|[^A-Za-z0-9_])"  # no word character just before the finding
_ND = r"(?:^|[^0-9\-])"  # no digit or dash just before
_SECRET = "|".join(
    [
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
        r"|[A-Za-z0-9+/=\s\\]*)",
        r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        r"(?:AKIA|ASIA)[0-9A-Z]{16}",
        r"gh[pousr]_[A-Za-z0-9]{36,}",
        r"github_pat_[A-Za-z0-9_]{22,}",
        r"xox[abposr]-[A-Za-z0-9\-]{10,}",
        r"AIza[0-9A-Za-z_\-]{35}",
        r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}",
        r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ]
)

# In priority order: where findings overlap, the earlier entity wins.
DETECTORS: tuple[Detector, ...] = (
    Detector("secret", "[SECRET]", rf"(?:^|[^A-Za-z0-9])({_SECRET})", _any, "a secret (API key or private key)"),
    Detector("credit_card", "[CREDIT_CARD]", rf"{_ND}(\d(?:[ \-]?\d){{12,18}})(?:[^0-9]|$)", _luhn,
             "a credit card number"),
    Detector("iban", "[IBAN]", rf"{_NB}([A-Z]{{2}}\d{{2}}(?: ?[A-Z0-9]){{11,30}})(?:[^A-Za-z0-9]|$)", _iban,
             "an IBAN"),
    Detector("ssn", "[SSN]", rf"{_ND}(\d{{3}}-\d{{2}}-\d{{4}})(?:[^0-9\-]|$)", _ssn, "a US social security number"),
    Detector("email", "[EMAIL]", r"(?:^|[^A-Za-z0-9._%+\-])([A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,})",
             _any, "an email address"),
    Detector("ip_address", "[IP_ADDRESS]",
             r"(?:^|[^0-9A-Za-z.:])((?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
             r"(?::(?:\d{1,3}\.){3}\d{1,3})?)(?:[^0-9A-Za-z.:]|\.(?:[^0-9]|$)|$)",
             _ip, "an IP address"),
    Detector("phone", "[PHONE]",
             r"(?:^|[^0-9A-Za-z+\-])(\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
             r"|(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4})(?:[^0-9\-]|$)",
             _phone, "a phone number"),
)


def detect(text: str, entities: frozenset[str]) -> list[tuple[int, int, Detector]]:
    """Non-overlapping findings (start, end, detector) of the chosen entities, in text order."""
    found: list[tuple[int, int, Detector]] = []
    for det in DETECTORS:
        if det.entity not in entities:
            continue
        regex, pos = det.regex(), 0
        while (m := regex.search(text, pos)) is not None:
            start, end = m.span(1)
            end = start + len(text[start:end].rstrip())
            # Resume right after the finding, not after the consumed boundary character.
            pos = max(end, m.start() + 1)
            if end <= start or not det.confirm(text[start:end]):
                continue
            if not any(s < end and start < e for s, e, _ in found):
                found.append((start, end, det))
    return sorted(found, key=lambda f: f[0])
