"""Prompt assembly: order, whole-turn truncation, refusal, and prefix stability."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from headrace.config import Settings
from headrace.context.assembly import Assembled, assemble, to_messages, turns
from headrace.context.chat_template import render_chat
from headrace.engine.tokenizer import Tokenizer
from headrace.errors import ContextLengthError


def _words(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> Sequence[int]:
    """A token counter: one token per word of every message (and 10 per tool)."""
    words = sum(len(str(m.get("content", "")).split()) + 1 for m in messages)
    return list(range(words + 10 * len(tools or [])))


def msg(role: str, text: str, item_id: str = "") -> dict[str, Any]:
    part = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "id": item_id or f"msg_{text[:8]}", "role": role,
            "content": [{"type": part, "text": text}]}  # fmt: skip


def call(call_id: str) -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id,
            "name": "lookup", "arguments": "{}"}  # fmt: skip


def result(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "id": f"fco_{call_id}", "call_id": call_id,
            "output": "found"}  # fmt: skip


def fit(history: list[dict[str, Any]], window: int, **kw: Any) -> Assembled:
    args: dict[str, Any] = {
        "instructions": "be kind",
        "history": history,
        "new_input": [msg("user", "now what")],
        "tools": None,
        "output_format": None,
        "encode": _words,
        "context_window": window,
        "max_tokens": 4,
        "default_max_tokens": 16,
        "truncation": "auto",
    } | kw
    return assemble(**args)


HISTORY = [
    msg("user", "one two three", "u1"),
    msg("assistant", "four five", "a1"),
    msg("user", "six seven eight", "u2"),
    call("c1"),
    result("c1"),
    msg("assistant", "nine ten", "a2"),
    msg("user", "eleven twelve", "u3"),
    msg("assistant", "thirteen", "a3"),
]


def test_instructions_then_history_then_input_in_order() -> None:
    out = fit(HISTORY, window=1000)
    assert out.dropped == ()
    assert out.messages[0] == {"role": "system", "content": "be kind"}
    assert [m["role"] for m in out.messages[1:]] == [
        "user", "assistant", "user", "assistant", "tool", "assistant", "user", "assistant", "user"
    ]  # fmt: skip
    # The call joins no earlier assistant message: it opens its own, answered by the tool.
    assert out.messages[4]["tool_calls"][0]["id"] == "c1"
    assert out.messages[5] == {"role": "tool", "tool_call_id": "c1", "content": "found"}
    assert out.messages[-1]["content"] == "now what"
    assert out.max_tokens == 4


def test_turns_start_at_user_messages_and_keep_calls_with_their_results() -> None:
    groups = turns(HISTORY)
    assert [[i["id"] for i in g] for g in groups] == [
        ["u1", "a1"], ["u2", "fc_c1", "fco_c1", "a2"], ["u3", "a3"]
    ]  # fmt: skip


def test_auto_drops_the_fewest_oldest_whole_turns() -> None:
    whole = len(_words(fit(HISTORY, window=1000).messages, None))
    first_turn = 3 + 1 + 2 + 1  # "one two three" and "four five", one extra per message
    out = fit(HISTORY, window=whole - first_turn + 4)  # room for exactly turns 2..3
    assert out.dropped == ("u1", "a1")
    out = fit(HISTORY, window=whole - first_turn + 3)  # one token short: turn 2 goes too
    assert out.dropped == ("u1", "a1", "u2", "fc_c1", "fco_c1", "a2")
    assert out.messages[0]["content"] == "be kind"  # never dropped
    assert not any(m["role"] == "tool" for m in out.messages)  # with its call


def test_disabled_refuses_what_does_not_fit() -> None:
    whole = len(_words(fit(HISTORY, window=1000).messages, None))
    with pytest.raises(ContextLengthError) as refused:
        fit(HISTORY, window=whole + 3, truncation="disabled")
    assert refused.value.code == "context_length_exceeded"
    assert fit(HISTORY, window=whole + 4, truncation="disabled").dropped == ()


def test_instructions_and_input_alone_too_long_is_refused_even_with_auto() -> None:
    with pytest.raises(ContextLengthError):
        fit(HISTORY, window=6)


def test_output_format_and_tools_are_part_of_the_prompt() -> None:
    schema = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    out = fit([], window=1000, output_format=schema)
    assert "JSON schema" in out.messages[0]["content"]
    assert out.messages[0]["content"].startswith("be kind")
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    assert (
        len(fit([], window=1000, tools=tools).token_ids) == len(fit([], window=1000).token_ids) + 10
    )


def test_function_call_after_a_message_joins_it() -> None:
    out = to_messages([msg("assistant", "let me look"), call("c9"), result("c9")])
    assert out[0]["content"] == "let me look"
    assert out[0]["tool_calls"][0]["function"]["name"] == "lookup"
    assert out[1]["role"] == "tool"


def test_each_turn_extends_the_previous_prompt_under_the_real_template() -> None:
    """Prefix stability: the engine's prefix cache hits on all of the previous turn."""
    settings = next(m for m in Settings().models if m.name == "headrace-tiny-chat")
    tokenizer = Tokenizer(settings.resolved_path())
    template = tokenizer.chat_template
    assert template is not None

    def encode(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
        return tokenizer.encode(
            render_chat(template, messages, tools=tools, add_generation_prompt=True)
        )

    history: list[dict[str, Any]] = []
    previous: tuple[int, ...] = ()
    for turn in range(5):
        question = msg("user", f"question number {turn}?", f"u{turn}")
        out = assemble(
            instructions="You are terse.", history=history, new_input=[question], tools=None,
            output_format=None, encode=encode, context_window=2048, max_tokens=8,
            default_max_tokens=8, truncation="auto",
        )  # fmt: skip
        assert out.token_ids[: len(previous)] == previous
        answer = msg("assistant", f"answer {turn}.", f"a{turn}")
        history += [question, answer]
        # The next turn's prompt starts with this one plus the answer the model gave.
        previous = out.token_ids
