"""The incremental detokeniser: UTF-8 safe, stop-string aware, loses nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headrace.engine.detokenizer import IncrementalDetokenizer


def byte_decode(ids: list[int]) -> str:
    """A byte-level 'tokenizer': each id is one byte, like byte-level BPE at its finest."""
    return bytes(ids).decode("utf-8", errors="replace")


def run(text: str, stop: list[str]) -> tuple[list[str], IncrementalDetokenizer]:
    detok = IncrementalDetokenizer(byte_decode, stop)
    pieces = [detok.push(b) for b in text.encode()]
    pieces.append(detok.flush())
    return pieces, detok


def test_multibyte_characters_are_never_split() -> None:
    pieces, _ = run("héllo wörld 🎉", [])
    assert "".join(pieces) == "héllo wörld 🎉"
    assert all("\ufffd" not in p for p in pieces)


def test_stop_string_is_never_emitted() -> None:
    pieces, detok = run("The answer is 42. STOP and more", ["STOP"])
    assert "".join(pieces) == "The answer is 42. "
    assert detok.stopped
    assert detok.text == "The answer is 42. "


def test_prefix_of_stop_is_held_then_released() -> None:
    detok = IncrementalDetokenizer(byte_decode, ["END"])
    out = [detok.push(b) for b in b"abEN"]
    assert "".join(out) == "ab"  # "EN" could still become "END"
    assert detok.push(ord("x")) == "ENx"


def test_earliest_of_several_stops_wins() -> None:
    pieces, _ = run("one two three", ["three", "two"])
    assert "".join(pieces) == "one "


@given(
    st.text(min_size=0, max_size=60),
    st.lists(st.text(min_size=1, max_size=4), max_size=3),
)
def test_released_text_is_the_text_cut_at_the_first_stop(text: str, stops: list[str]) -> None:
    pieces, _ = run(text, stops)
    hits = [i for s in stops if (i := text.find(s)) >= 0]
    expected = text[: min(hits)] if hits else text
    assert "".join(pieces) == expected
    assert all("\ufffd" not in p for p in pieces) or "\ufffd" in text
