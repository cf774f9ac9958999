"""Parsing the template's tool-call blocks, whole and streamed in arbitrary pieces."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from headrace.context.tool_calls import ToolCallStream, parse_tool_calls

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_plain_text_has_no_calls() -> None:
    assert parse_tool_calls("The capital is Paris.") == ("The capital is Paris.", [])


def test_one_call() -> None:
    content, calls = parse_tool_calls(CALL)
    assert content == ""
    assert [c.name for c in calls] == ["get_weather"]
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert calls[0].id.startswith("call_")


def test_content_before_and_parallel_calls() -> None:
    second = CALL.replace("Paris", "Rome")
    content, calls = parse_tool_calls("Let me check.\n" + CALL + "\n" + second)
    assert content == "Let me check.\n"
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert calls[0].id != calls[1].id


def test_malformed_block_stays_content() -> None:
    bad = "<tool_call>\n{not json}\n</tool_call>"
    assert parse_tool_calls(bad) == (bad, [])
    unfinished = '<tool_call>\n{"name": "x"'
    assert parse_tool_calls(unfinished) == (unfinished, [])


def test_string_arguments_are_accepted() -> None:
    text = '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>'
    _, calls = parse_tool_calls(text)
    assert json.loads(calls[0].arguments) == {"a": 1}


@given(st.lists(st.integers(1, 12), min_size=1, max_size=40))
def test_streaming_in_any_pieces_equals_parsing_whole(cuts: list[int]) -> None:
    text = "Sure.\n" + CALL + "\n" + CALL.replace("Paris", "Oslo") + " bye"
    stream = ToolCallStream()
    content, names, pos = [], [], 0
    for size in cuts * 20:
        if pos >= len(text):
            break
        piece, calls = stream.push(text[pos : pos + size])
        content.append(piece)
        names += [json.loads(c.arguments)["city"] for c in calls]
        pos += size
    if pos < len(text):
        piece, calls = stream.push(text[pos:])
        content.append(piece)
        names += [json.loads(c.arguments)["city"] for c in calls]
    content.append(stream.flush())
    whole_content, whole_calls = parse_tool_calls(text)
    assert "".join(content) == whole_content
    assert names == [json.loads(c.arguments)["city"] for c in whole_calls]
