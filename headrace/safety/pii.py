"""Personal data in text: recognisers with validators, and redaction.

    find_pii("mail bob@example.com")   # [PiiSpan("email", 5, 20, "bob@example.com")]
    redact("mail bob@example.com")     # "mail [EMAIL]"

Each recogniser is a regular expression for the shape and, where the kind has one, a
validator that cuts false positives: Luhn for cards, mod-97 and the country's length for
IBANs, `ipaddress` for IPs, check digits or letters for national ids. Pure and fast: it runs
on every string of every log line (`observability/redaction.py`).

Own code rather than presidio: presidio-analyzer requires spaCy (and a spaCy model for its
engine) even for its pattern recognisers, and costs tens of microseconds per call in
context-enhancement machinery we do not need.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

PiiKind = Literal[
    "email",
    "phone",
    "credit_card",
    "iban",
    "ip_address",
    "secret",
    "us_ssn",
    "uk_nino",
    "es_dni",
    "nl_bsn",
]
PII_KINDS: tuple[PiiKind, ...] = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "ip_address",
    "secret",
    "us_ssn",
    "uk_nino",
    "es_dni",
    "nl_bsn",
)


@dataclass(frozen=True, slots=True)
class PiiSpan:
    kind: PiiKind
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Recogniser:
    kind: PiiKind
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    # Cheap tests on the whole text: when one fails the pattern cannot match, skip it.
    hint: Callable[[str], bool] | None = None
    min_digits: int = 0


def luhn_valid(digits: str) -> bool:
    """The Luhn check every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Issuer prefixes of the major networks: a Luhn-valid number outside them is not a card.
_CARD_PREFIX = re.compile(
    r"4|5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9])"
    r"|35(?:2[89]|[3-8])|62"
)


def _card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn_valid(digits)


# Lengths of IBANs per country (the SWIFT registry); mod-97 alone passes 1 in 97 strings.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(text: str) -> bool:
    """Known country, that country's length, and the ISO 13616 mod-97 check."""
    iban = text.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return text.count(":") >= 2


def ssn_valid(text: str) -> bool:
    """Excludes what the SSA never issues: area 000, 666, 900-999; group 00; serial 0000."""
    area, group, serial = re.split(r"[- ]", text)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def _nino(text: str) -> bool:
    return text[:2].upper() not in _NINO_BAD_PREFIXES


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_valid(text: str) -> bool:
    """Spanish DNI (8 digits) or NIE (X, Y or Z and 7 digits) with its check letter."""
    value = text.replace("-", "").upper()
    head = str("XYZ".index(value[0])) if value[0] in "XYZ" else value[0]
    number = head + value[1:-1]
    return _DNI_LETTERS[int(number) % 23] == value[-1]


def bsn_valid(text: str) -> bool:
    """Dutch citizen service number: the 11-check (last digit weighted -1)."""
    digits = [int(c) for c in text]
    total = sum(d * w for d, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True))
    return total % 11 == 0 and total > 0


def shannon_entropy(text: str) -> float:
    """Bits per character: random tokens score above 3.5, words and ids below."""
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _labelled_secret(text: str) -> bool:
    value = re.split(r"[:=]\s*[\"']?", text, maxsplit=1)[1].rstrip("\"'")
    return len(value) >= 16 and shannon_entropy(value) >= 3.5


_SECRET = (
    r"sk-(?:proj-|hr-|ant-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Headrace, Anthropic keys
    r"|hr-admin-[A-Za-z0-9_-]{16,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:sk|rk)_live_[A-Za-z0-9]{16,}"  # Stripe
    r"|AIza[A-Za-z0-9_-]{35}"  # Google API keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWTs
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
)
_SECRET_HINTS = (
    "sk-", "hr-admin-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
    "xox", "_live_", "AIza", "eyJ", "-----",
)  # fmt: skip

RECOGNISERS: tuple[Recogniser, ...] = (
    Recogniser(
        "secret",
        re.compile(rf"(?<![A-Za-z0-9_-])(?:{_SECRET})"),
        hint=lambda t: any(h in t for h in _SECRET_HINTS),
    ),
    Recogniser(
        "secret",
        re.compile(
            r"(?i:\b(?:api[_-]?key|secret|token|password|passwd|access[_-]?key))"
            r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-+/.=]{16,}[\"']?"
        ),
        _labelled_secret,
        hint=lambda t: "=" in t or ":" in t,
    ),
    Recogniser(
        "email",
        re.compile(
            # No left boundary: an address glued to a long prefix is still found.
            r"[A-Za-z0-9._%+-]{1,64}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
        ),
        hint=lambda t: "@" in t,
    ),
    Recogniser(
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        iban_valid,
        min_digits=4,
    ),
    Recogniser(
        "credit_card",
        re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])"),
        _card,
        min_digits=13,
    ),
    Recogniser("us_ssn", re.compile(r"\b\d{3}([- ])\d{2}\1\d{4}\b"), ssn_valid, min_digits=9),
    Recogniser(
        "uk_nino",
        re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
        _nino,
        min_digits=6,
    ),
    Recogniser(
        "es_dni",
        re.compile(r"\b(?:\d{8}|[XYZ]\d{7})-?[A-HJ-NP-TV-Z]\b"),
        dni_valid,
        min_digits=7,
    ),
    Recogniser("nl_bsn", re.compile(r"(?<![\w.-])\d{9}(?![\w.-])"), bsn_valid, min_digits=9),
    Recogniser(
        "ip_address",
        re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"),
        _ipv4,
        hint=lambda t: "." in t,
        min_digits=4,
    ),
    Recogniser(
        "ip_address",
        re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])"),
        _ipv6,
        hint=lambda t: "::" in t or t.count(":") >= 3,
    ),
    Recogniser(
        "phone",
        re.compile(
            # International (+ and country code) or North American with separators; a bare
            # run of digits is too often an id, an amount or a timestamp to call it a phone.
            r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w-])"
            r"|(?<![\w+-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w-])"
            r"|(?<![\w+-])0\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}(?![\w-])"
        ),
        lambda t: 7 <= sum(c.isdigit() for c in t) <= 15,
        min_digits=7,
    ),
)
_ORDER = {kind: i for i, kind in enumerate(PII_KINDS)}
_NO_DIGITS = str.maketrans("", "", "0123456789")


def find_pii(text: str, kinds: Iterable[PiiKind] | None = None) -> list[PiiSpan]:
    """Every piece of personal data in `text`, in order, without overlaps (the longer
    match wins; on a tie, the kind listed first in `PII_KINDS`)."""
    wanted = None if kinds is None else set(kinds)
    digits = len(text) - len(text.translate(_NO_DIGITS))
    if digits < 4 and not _maybe_without_digits(text):
        return []  # the common case in logs (names, paths, words): no recogniser can match
    if _ONE_WORD.fullmatch(text):  # ids, hashes: only a recogniser that takes a whole word
        words = _word_kinds(text)
        wanted = words if wanted is None else wanted & words
    found: list[PiiSpan] = []
    for rec in RECOGNISERS:
        if (wanted is not None and rec.kind not in wanted) or digits < rec.min_digits:
            continue
        if rec.hint is not None and not rec.hint(text):
            continue
        for m in rec.pattern.finditer(text):
            if rec.validate is None or rec.validate(m.group()):
                found.append(PiiSpan(rec.kind, m.start(), m.end(), m.group()))
    if len(found) < 2:
        return found
    found.sort(key=lambda s: (s.start - s.end, _ORDER[s.kind], s.start))
    chosen: list[PiiSpan] = []
    for span in found:
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


_ONE_WORD = re.compile(r"\w+")


def _word_kinds(word: str) -> set[PiiKind]:
    """The kinds a single word (no spaces or punctuation) can be. Every recogniser's edges
    are word boundaries, so a word is one of these whole, or holds a secret's prefix."""
    n = len(word)
    found: set[PiiKind] = {"secret"}
    if word.isdigit():
        found.update(("credit_card",) if 13 <= n <= 19 else ("nl_bsn",) if n == 9 else ())
    if n == 9:
        found.update(("uk_nino", "es_dni"))
    if 15 <= n <= 32 and word[:2].isupper() and word[2:4].isdigit():
        found.add("iban")
    return found


def _maybe_without_digits(text: str) -> bool:
    return (
        "@" in text
        or "=" in text
        or ":" in text
        or any(h in text for h in _SECRET_HINTS)
        or "BEGIN" in text
    )


def redact(text: str, kinds: Iterable[PiiKind] | None = None) -> str:
    """`text` with each piece of personal data replaced by its kind: `[EMAIL]`."""
    spans = find_pii(text, kinds)
    if not spans:
        return text
    out: list[str] = []
    at = 0
    for span in spans:
        out.append(text[at : span.start])
        out.append(f"[{span.kind.upper()}]")
        at = span.end
    out.append(text[at:])
    return "".join(out)


# Structural fields of stored items: ids and enums, never personal data; left as they are
# so references between items survive redaction.
_STRUCTURAL = frozenset({"id", "type", "role", "status", "object", "call_id", "model"})


def redact_value(value: Any, kinds: Iterable[PiiKind] | None = None) -> Any:
    """A JSON-like value (stored items, response bodies) with every string redacted,
    except the structural fields (`id`, `type`, `role`, ...)."""
    if isinstance(value, str):
        return redact(value, kinds)
    if isinstance(value, dict):
        return {
            k: v if k in _STRUCTURAL and isinstance(v, str) else redact_value(v, kinds)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v, kinds) for v in value]
    return value
