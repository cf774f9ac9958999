"""The reservation's token estimate for prompts to models elsewhere."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headrace.admission.estimate import estimate_tokens


def test_english_is_about_four_characters_a_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("Hi") == 1
    assert estimate_tokens("What is the capital of France?") == 8  # 30 characters
    assert estimate_tokens("x" * 4000) == 1000


def test_cjk_characters_are_a_token_each_and_accents_half() -> None:
    assert estimate_tokens("東京は日本の首都です") == 10
    assert estimate_tokens("ça coûte très cher") == 6  # 18 characters, 3 of them accented


@given(st.text())
def test_at_least_one_token_and_at_most_one_a_character(text: str) -> None:
    estimate = estimate_tokens(text)
    assert (estimate >= 1) == bool(text)
    assert estimate <= len(text)


@given(st.text(), st.text())
def test_more_text_is_never_fewer_tokens_in_ascii(left: str, right: str) -> None:
    left, right = left.encode("ascii", "ignore").decode(), right.encode("ascii", "ignore").decode()
    assert estimate_tokens(left + right) >= max(estimate_tokens(left), estimate_tokens(right))
