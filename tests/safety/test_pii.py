"""Every PII recogniser: what it finds, what its validator turns away, and redaction."""

from __future__ import annotations

import pytest

from headrace.safety.pii import (
    PII_KINDS,
    bsn_valid,
    dni_valid,
    find_pii,
    iban_valid,
    luhn_valid,
    redact,
    shannon_entropy,
    ssn_valid,
)


def kinds(text: str) -> list[tuple[str, str]]:
    return [(s.kind, s.text) for s in find_pii(text)]


FOUND = [
    # email
    (
        "write to bob.smith+tag@mail.example.co.uk today",
        "email",
        "bob.smith+tag@mail.example.co.uk",
    ),
    ("(a_b-c@sub.domain.io)", "email", "a_b-c@sub.domain.io"),
    # phone: international, North American, national with a trunk 0
    ("call +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
    ("call +1-415-555-2671", "phone", "+1-415-555-2671"),
    ("or (415) 555-2671.", "phone", "(415) 555-2671"),
    ("ring 020 7946 0958", "phone", "020 7946 0958"),
    # credit cards: Visa, Mastercard, Amex, Discover; spaces and dashes
    ("pay with 4111 1111 1111 1111 please", "credit_card", "4111 1111 1111 1111"),
    ("5555-5555-5555-4444", "credit_card", "5555-5555-5555-4444"),
    ("amex 378282246310005", "credit_card", "378282246310005"),
    ("disc 6011111111111117", "credit_card", "6011111111111117"),
    # IBANs, grouped and not
    ("to GB82 WEST 1234 5698 7654 32 ok", "iban", "GB82 WEST 1234 5698 7654 32"),
    ("DE89370400440532013000", "iban", "DE89370400440532013000"),
    ("NL91ABNA0417164300", "iban", "NL91ABNA0417164300"),
    # IP addresses
    ("from 192.168.10.1:443", "ip_address", "192.168.10.1"),
    ("host 2001:db8::ff00:42:8329", "ip_address", "2001:db8::ff00:42:8329"),
    # secrets
    (
        "OPENAI_API_KEY sk-proj-abcDEF1234567890ghijklmnop",
        "secret",
        "sk-proj-abcDEF1234567890ghijklmnop",
    ),
    ("key AKIAIOSFODNN7EXAMPLE", "secret", "AKIAIOSFODNN7EXAMPLE"),
    ("ghp_" + "a1B2" * 9, "secret", "ghp_" + "a1B2" * 9),
    ("xoxb-123456789012-abcdefABCDEF", "secret", "xoxb-123456789012-abcdefABCDEF"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "secret", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    (
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "secret",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    ),
    (
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        "secret",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
    ),
    ("api_key=Zx8Qw3Er5Ty7Ui9Op1As", "secret", "api_key=Zx8Qw3Er5Ty7Ui9Op1As"),
    ('"password": "Tr0ub4dorX3xK9mQ2zLpW"', "secret", 'password": "Tr0ub4dorX3xK9mQ2zLpW"'),
    # national ids
    ("SSN 123-45-6789.", "us_ssn", "123-45-6789"),
    ("NINO AB 12 34 56 C", "uk_nino", "AB 12 34 56 C"),
    ("nino JG103759A", "uk_nino", "JG103759A"),
    ("DNI 12345678Z", "es_dni", "12345678Z"),
    ("NIE X1234567L", "es_dni", "X1234567L"),
    ("BSN 111222333", "nl_bsn", "111222333"),
]


@pytest.mark.parametrize(("text", "kind", "value"), FOUND)
def test_each_recogniser_finds_its_kind(text: str, kind: str, value: str) -> None:
    spans = find_pii(text)
    assert any(s.kind == kind and value in s.text for s in spans), kinds(text)
    for s in spans:
        assert text[s.start : s.end] == s.text


NOT_FOUND = [
    "no personal data at all, just words",
    "req_0123456789abcdef0123456789abcdef",  # request ids
    "4b1f0c2d9e8a7b6c5d4e3f2a1b0c9d8e",  # trace ids
    "2026-11-24T16:05:04.123456Z",  # timestamps
    "/v1/chat/completions headrace-tiny-chat",
    "version 1.2.3, build 20261124",
    "4111 1111 1111 1112",  # fails Luhn
    "1234 5678 9012 3456",  # no issuer prefix, fails Luhn
    "GB82 WEST 1234 5698 7654 33",  # fails mod-97
    "GB82 WEST 1234 5698 7654",  # wrong length for GB
    "10.0.0.256",  # not an IPv4 address
    "000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000",  # never-issued SSNs
    "QQ123456C GB123456A",  # prefixes no NINO has
    "12345678A",  # wrong DNI check letter
    "123456789",  # fails the 11-check
    "user@localhost",  # no domain
    "password: hunter2",  # too short to be a secret
    "token=aaaaaaaaaaaaaaaaaaaa",  # no entropy
    "sk-short",
    "the year 2026 and 12 items",
]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_lookalikes_are_not_pii(text: str) -> None:
    assert find_pii(text) == []
    assert redact(text) == text


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert luhn_valid("4111111111111111")


def test_iban_checks_country_length_and_mod_97() -> None:
    assert iban_valid("GB82WEST12345698765432")
    assert iban_valid("gb82 west 1234 5698 7654 32")
    assert not iban_valid("GB82WEST1234569876543")  # one short
    assert not iban_valid("XX82WEST12345698765432")  # no such country
    assert not iban_valid("GB83WEST12345698765432")  # check digits


def test_ssn_ranges() -> None:
    assert ssn_valid("123-45-6789")
    assert ssn_valid("123 45 6789")
    for bad in ("000-45-6789", "666-45-6789", "987-45-6789", "123-00-6789", "123-45-0000"):
        assert not ssn_valid(bad)


def test_dni_and_nie_check_letters() -> None:
    assert dni_valid("12345678Z")
    assert dni_valid("12345678-Z")
    assert dni_valid("X1234567L")
    assert dni_valid("Y1234567X")
    assert not dni_valid("12345678Y")
    assert not dni_valid("X1234567A")


def test_bsn_eleven_check() -> None:
    assert bsn_valid("111222333")
    assert bsn_valid("123456782")
    assert not bsn_valid("123456789")
    assert not bsn_valid("000000000")


def test_entropy_tells_random_from_repetitive() -> None:
    assert shannon_entropy("aaaaaaaaaaaaaaaa") == 0
    assert shannon_entropy("Zx8Qw3Er5Ty7Ui9Op1As") > 3.5


def test_redaction_replaces_each_span_with_its_kind() -> None:
    text = "Mail bob@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111."
    assert redact(text) == "Mail [EMAIL] or call [PHONE]; card [CREDIT_CARD]."


def test_redaction_of_chosen_kinds_only() -> None:
    text = "bob@example.com 123-45-6789"
    assert redact(text, ["email"]) == "[EMAIL] 123-45-6789"
    assert redact(text, ["us_ssn"]) == "bob@example.com [US_SSN]"


def test_overlapping_matches_keep_the_longer_one() -> None:
    # The IBAN's digits alone could look like other things; the whole IBAN wins.
    [span] = find_pii("NL91ABNA0417164300")
    assert span.kind == "iban"
    # A card number is never also reported as a phone number.
    assert [s.kind for s in find_pii("4111 1111 1111 1111")] == ["credit_card"]


def test_many_kinds_in_one_text_come_back_in_order() -> None:
    text = "a@b.io then 192.168.1.1 then 123-45-6789 then AB123456C"
    assert [s.kind for s in find_pii(text)] == ["email", "ip_address", "us_ssn", "uk_nino"]
    assert set(PII_KINDS) >= {s.kind for s in find_pii(text)}
