"""Mask mode's placeholders: one per value, restored whole however the output is split."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hypothesis import given
from hypothesis import strategies as st

from headrace.engine.interface import Finished, GenerationEvent, TextDelta
from headrace.safety.placeholders import Masker, mask_messages, restore_events

EMAIL = "bob@example.com"
CARD = "4111 1111 1111 1111"


def test_the_same_value_gets_the_same_placeholder() -> None:
    m = Masker()
    assert m.mask(f"{EMAIL}, {CARD}, {EMAIL}") == "<EMAIL_1>, <CREDIT_CARD_1>, <EMAIL_1>"
    assert m.mask("and carol@example.org") == "and <EMAIL_2>"
    assert m.originals == {
        "<EMAIL_1>": EMAIL,
        "<CREDIT_CARD_1>": CARD,
        "<EMAIL_2>": "carol@example.org",
    }


def test_only_the_chosen_kinds_are_masked() -> None:
    m = Masker(frozenset({"credit_card"}))
    assert m.mask(f"{EMAIL} {CARD}") == f"{EMAIL} <CREDIT_CARD_1>"


def test_text_without_pii_is_unchanged() -> None:
    m = Masker()
    assert m.mask("nothing here") == "nothing here"
    assert m.unmask("a <b> tag and <EMAIL_9>") == "a <b> tag and <EMAIL_9>"


def test_unmask_restores_known_placeholders_only() -> None:
    m = Masker()
    m.mask(EMAIL)
    assert m.unmask("to <EMAIL_1>, not <EMAIL_2>") == f"to {EMAIL}, not <EMAIL_2>"


def test_messages_are_masked_in_content_and_earlier_tool_call_arguments() -> None:
    m = Masker()
    messages = [
        {"role": "user", "content": f"mail {EMAIL}"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "function": {"name": "send", "arguments": f'{{"to": "{EMAIL}"}}'}}
            ],
        },
        {"role": "tool", "content": None, "tool_call_id": "c1"},
    ]
    out = mask_messages(m, messages)
    assert out[0]["content"] == "mail <EMAIL_1>"
    assert out[1]["tool_calls"][0]["function"]["arguments"] == '{"to": "<EMAIL_1>"}'
    assert out[2]["content"] == ""
    assert messages[0]["content"] == f"mail {EMAIL}"  # the caller's list is left alone


def _restored(masker: Masker, pieces: list[str]) -> tuple[str, list[str]]:
    r = masker.restorer()
    shown = [r.push(p) for p in pieces] + [r.flush()]
    return "".join(shown), shown


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_a_placeholder_split_anywhere_is_restored_whole(cuts: list[int]) -> None:
    m = Masker()
    m.mask(f"{EMAIL} {CARD}")
    output = "Wrote to <EMAIL_1> about <CREDIT_CARD_1>, see <b>x</b> and <EMAIL_7> <EMAIL_"
    points = sorted({min(c, len(output)) for c in cuts})
    pieces = [output[a:b] for a, b in zip([0, *points], [*points, len(output)], strict=True)]
    text, shown = _restored(m, pieces)
    assert text == f"Wrote to {EMAIL} about {CARD}, see <b>x</b> and <EMAIL_7> <EMAIL_"
    assert not any("<EMAIL_1" in s or "CREDIT_CARD_1>" in s for s in shown)


def test_text_that_cannot_become_a_placeholder_is_not_held_back() -> None:
    m = Masker()
    m.mask(EMAIL)
    r = m.restorer()
    assert r.push("a < b and <b") == "a < b and <b"
    assert r.push(" <EM") == " "  # may still become <EMAIL_1>
    assert r.push("PTY>") == "<EMPTY>"


async def _events(pieces: list[str]) -> AsyncIterator[tuple[int, GenerationEvent]]:
    for i, p in enumerate(pieces):
        yield i % 2, TextDelta(text=p, token_ids=(i,))
    yield 0, Finished("stop", 1, 2)
    yield 1, Finished("stop", 1, 2)


def test_events_are_restored_per_choice_and_held_tails_come_before_finished() -> None:
    m = Masker()
    m.mask(EMAIL)

    async def collect() -> list[tuple[int, GenerationEvent]]:
        return [e async for e in restore_events(_events(["to <EMA", "x <EM", "IL_1>", "AIL_"]), m)]

    events = asyncio.run(collect())
    text = {0: "", 1: ""}
    for index, ev in events:
        if isinstance(ev, TextDelta):
            text[index] += ev.text
    assert text == {0: f"to {EMAIL}", 1: "x <EMAIL_"}
    assert isinstance(events[-1][1], Finished)
    assert [type(e).__name__ for i, e in events if i == 1][-2:] == ["TextDelta", "Finished"]
