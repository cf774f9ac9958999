"""The tokenizer wrapper: counting agrees with encoding, special tokens included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.config import BUNDLED_MODELS_DIR
from headrace.engine.tokenizer import Tokenizer

TOKENIZER = Tokenizer(BUNDLED_MODELS_DIR / "headrace-tiny-chat")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_count_is_the_length_of_the_encoding(text: str) -> None:
    assert TOKENIZER.count(text) == len(TOKENIZER.encode(text))


def test_special_tokens_in_the_text_count_as_one() -> None:
    assert TOKENIZER.count("<|im_end|>") == 1
    assert TOKENIZER.encode("<|im_end|>") == [TOKENIZER.eos_token_id]
