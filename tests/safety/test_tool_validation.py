"""Tool calls against their declared JSON schemas, and the parser's `accept` hook."""

from __future__ import annotations

import json

import pytest

from headrace.context.tool_calls import ToolCallStream, parse_tool_calls
from headrace.errors import InvalidRequestError
from headrace.safety.tool_validation import ToolCallValidator

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"enum": ["c", "f"]},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {"type": "function", "function": {"name": "no_params"}},
]


def test_arguments_that_fit_pass() -> None:
    v = ToolCallValidator(TOOLS)
    assert v.problem("get_weather", '{"city": "Paris", "unit": "c"}') is None
    assert v.accepts("no_params", "{}")  # no schema: any object


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("get_weather", '{"unit": "c"}', "'city' is a required property"),
        ("get_weather", '{"city": 3}', "city: 3 is not of type 'string'"),
        ("get_weather", '{"city": "x", "unit": "k"}', "unit: 'k' is not one of"),
        ("get_weather", '{"city": "x", "extra": 1}', "Additional properties"),
        ("get_weather", "not json", "arguments are not JSON"),
        ("launch", "{}", "no function named 'launch'"),
    ],
)
def test_arguments_that_do_not_fit_say_why(name: str, arguments: str, problem: str) -> None:
    found = ToolCallValidator(TOOLS).problem(name, arguments)
    assert found is not None
    assert problem in found


def test_an_invalid_schema_is_a_400_naming_the_tool() -> None:
    bad = [{"type": "function", "function": {"name": "f", "parameters": {"type": 12}}}]
    with pytest.raises(InvalidRequestError) as caught:
        ToolCallValidator(bad)
    assert caught.value.param == "tools[0].function.parameters"


def _block(name: str, arguments: dict[str, object]) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def test_a_refused_call_stays_content_in_the_parser() -> None:
    v = ToolCallValidator(TOOLS)
    text = "Sure. " + _block("get_weather", {"city": 1}) + _block("get_weather", {"city": "Oslo"})
    content, calls = parse_tool_calls(text, lambda c: v.accepts(c.name, c.arguments))
    assert content == "Sure. " + _block("get_weather", {"city": 1})
    assert [json.loads(c.arguments) for c in calls] == [{"city": "Oslo"}]


def test_a_refused_call_streams_as_content() -> None:
    stream = ToolCallStream(accept=lambda c: False)
    block = _block("get_weather", {"city": "Oslo"})
    shown, calls = stream.push(block[:15])
    more, calls2 = stream.push(block[15:])
    assert calls == calls2 == []
    assert shown + more + stream.flush() == block
    assert stream.calls == []
