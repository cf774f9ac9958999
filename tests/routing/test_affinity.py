"""The affinity key of a chat request: the client's header, else the conversation's opening."""

from __future__ import annotations

from headrace.routing.affinity import MAX_KEY_CHARS, affinity_key

SYSTEM = {"role": "system", "content": "You are terse."}
FIRST = {"role": "user", "content": "Name a prime."}


def test_every_turn_of_a_conversation_has_the_key_of_its_opening() -> None:
    turn1 = [SYSTEM, FIRST]
    turn2 = [*turn1, {"role": "assistant", "content": "7"}, {"role": "user", "content": "More"}]
    turn3 = [*turn2, {"role": "assistant", "content": "11"}, {"role": "user", "content": "Why?"}]
    keys = {affinity_key(turn) for turn in (turn1, turn2, turn3)}
    assert len(keys) == 1
    assert None not in keys


def test_conversations_that_open_differently_have_different_keys() -> None:
    base = affinity_key([SYSTEM, FIRST])
    assert affinity_key([FIRST]) != base  # no system prompt
    assert affinity_key([{"role": "system", "content": "Be verbose."}, FIRST]) != base
    assert affinity_key([SYSTEM, {"role": "user", "content": "Name a square."}]) != base
    assert affinity_key([{"role": "developer", "content": "You are terse."}, FIRST]) != base


def test_content_parts_are_keyed_whatever_their_key_order() -> None:
    a = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    b = [{"role": "user", "content": [{"text": "hi", "type": "text"}]}]
    assert affinity_key(a) == affinity_key(b) is not None


def test_the_header_wins_and_is_bounded() -> None:
    assert affinity_key([SYSTEM, FIRST], "session-42") == "session-42"
    assert affinity_key([], " session-42 ") == "session-42"
    assert len(affinity_key([], "x" * 10_000) or "") == MAX_KEY_CHARS
    assert affinity_key([SYSTEM, FIRST], "  ") == affinity_key([SYSTEM, FIRST])  # blank: unset


def test_no_user_message_no_key() -> None:
    assert affinity_key([]) is None
    assert affinity_key([SYSTEM]) is None
