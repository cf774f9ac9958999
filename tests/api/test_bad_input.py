"""The issue's "Bad input" sweep: every invalid combination is a 400 whose `param` names the
offending field; the valid corner cases (several greedy choices) are served."""

from __future__ import annotations

from typing import Any

import openai
import pytest

MODEL = "headrace-tiny-chat"
EMBED = "headrace-embed-minilm"
ASK = [{"role": "user", "content": "Say hi."}]
BROKEN_SCHEMA = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def test_several_greedy_choices_are_fine(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, n=2, temperature=0, max_tokens=5)
    assert len(r.choices) == 2
    assert r.choices[0].message.content == r.choices[1].message.content


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": []}, "messages"),
        ({"n": 17}, "n"),
        ({"n": 1000}, "n"),
        ({"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
            "tool_choice",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": BROKEN_SCHEMA},
                }
            },
            "response_format.json_schema.schema",
        ),
        (
            {
                "tools": [
                    TOOL,
                    {"type": "function", "function": {"name": "g", "parameters": BROKEN_SCHEMA}},
                ],
                "tool_choice": {"type": "function", "function": {"name": "g"}},
            },
            "tools[1].function.parameters",
        ),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"seed": 2**64}, "seed"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
        (
            {"messages": [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]},
            "messages[0].tool_call_id",
        ),
        (
            {
                "messages": [
                    *ASK,
                    {"role": "assistant", "content": None, "tool_calls": [CALL]},
                    {"role": "tool", "tool_call_id": "call_2", "content": "{}"},
                ],
                "tools": [TOOL],
            },
            "messages[2].tool_call_id",
        ),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0]"),
        ({"service_tier": "gold"}, "service_tier"),
        ({"extra_body": {"not_a_parameter": 1}}, "not_a_parameter"),
    ],
)
def test_chat_bad_input(client: openai.OpenAI, kwargs: dict[str, object], param: str) -> None:
    args: dict[str, object] = {"model": MODEL, "messages": ASK} | kwargs
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**args)  # type: ignore[call-overload]
    assert info.value.status_code == 400
    assert info.value.param == param


def test_a_tool_result_answering_its_call_is_fine(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [CALL]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "call_1", "content": "{}"},
        ],
        tools=[TOOL],  # type: ignore[list-item]
        max_tokens=3,
    )
    assert r.choices


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"n": 17}, "n"),
        ({"logprobs": 6}, "logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"seed": -(2**64)}, "seed"),
        ({"prompt": [[1, 2], []]}, "prompt"),
    ],
)
def test_completions_bad_input(
    client: openai.OpenAI, kwargs: dict[str, object], param: str
) -> None:
    args: dict[str, object] = {"model": MODEL, "prompt": "Hi"} | kwargs
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(**args)  # type: ignore[call-overload]
    assert info.value.param == param


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": [-1, 5]}, "input"),
        ({"input": [[101, 30522]]}, "input"),
        ({"input": [2**40]}, "input"),
        ({"encoding_format": "hex"}, "encoding_format"),
        ({"dimensions": 0}, "dimensions"),
    ],
)
def test_embeddings_bad_input(client: openai.OpenAI, kwargs: dict[str, object], param: str) -> None:
    args: dict[str, object] = {"model": EMBED, "input": "hi"} | kwargs
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(**args)  # type: ignore[arg-type]
    assert info.value.param == param
