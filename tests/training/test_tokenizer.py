"""The tokenizer's pre-tokenizer (training/tokenizer.py): template words whole, other
lower-case words in pieces of at most two letters, digits and capitals one by one."""

from __future__ import annotations

import re
from functools import cache

from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer

from training import corpus
from training.template import render
from training.tokenizer import template_words, train_tokenizer, word_trie


@cache
def texts() -> list[str]:
    return [render(c.messages, c.tools) for c in corpus.generate(1500, 3, "train")]


@cache
def tokenizer() -> Tokenizer:
    return train_tokenizer(texts(), 1024)


def pieces(text: str) -> list[str]:
    return [tokenizer().decode([i]) for i in tokenizer().encode(text).ids]


def test_template_words_are_frequent_and_never_content_words() -> None:
    words = template_words(texts())
    assert {"spelled", "capital", "weather", "the"} <= set(words)
    assert not set(words) & set(corpus.WORDS)  # the words string tasks spell
    assert all(len(w) >= 3 and w.islower() for w in words)
    assert words == sorted(words, key=lambda w: (-len(w), w))  # longest first
    assert template_words(texts(), min_count=10**9) == []


def test_template_words_stay_whole_and_other_words_are_cut_into_pairs() -> None:
    assert pieces("How do you spell limada?")[:6] == ["How", " ", "do", " ", "you", " "]
    spelled = pieces("spell limada")
    assert spelled[:2] == ["spell", " "]
    assert "".join(spelled[2:]) == "limada"
    assert all(len(p) <= 2 for p in spelled[2:])
    # A content word is cut the same way wherever it stands, inside a template word or not.
    for text in ("apple", " apple.", '"apple"', "the apple"):
        assert [p for p in pieces(text) if p.isalpha() and p != "the"] == pieces("apple")


def test_digits_and_capitals_are_single_tokens() -> None:
    assert pieces("1234") == ["1", "2", "3", "4"]
    assert pieces("HOUSE") == ["H", "O", "U", "S", "E"]
    assert pieces("Paris")[0][0] == "P"
    assert "".join(pieces("Paris")) == "Paris"


WORDS = st.text(alphabet="abcde", min_size=1, max_size=5)


@given(st.lists(WORDS, min_size=1, max_size=30), st.lists(WORDS, max_size=30))
def test_the_word_trie_matches_exactly_its_words(words: list[str], probes: list[str]) -> None:
    pattern = re.compile(word_trie(words))
    for text in [*words, *probes]:
        assert (pattern.fullmatch(text) is not None) == (text in words)
