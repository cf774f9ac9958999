"""The SDK's structured-output helpers: `chat.completions.parse` with a pydantic model as
`response_format` (and as a strict function tool) gets a parsed object back."""

from __future__ import annotations

from typing import Literal

import openai
import pytest
from pydantic import BaseModel

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "What is the capital of France? Answer in JSON."}]


class Capital(BaseModel):
    city: Literal["Paris", "Lyon", "Marseille"]
    is_capital: bool


class GetWeather(BaseModel):
    city: Literal["Paris", "Berlin"]
    unit: Literal["celsius", "fahrenheit"]


def test_parse_with_a_pydantic_response_format(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        response_format=Capital,
        max_tokens=60,
        temperature=0,
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(message.parsed, Capital)
    assert Capital.model_validate_json(message.content or "") == message.parsed


def test_beta_parse_when_the_sdk_has_it(client: openai.OpenAI) -> None:
    beta = getattr(getattr(client, "beta", None), "chat", None)
    if beta is None:
        pytest.skip("this SDK has no client.beta.chat")
    completion = beta.completions.parse(
        model=MODEL, messages=ASK, response_format=Capital, max_tokens=60, seed=3
    )
    assert isinstance(completion.choices[0].message.parsed, Capital)


def test_parse_with_a_pydantic_function_tool(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice="required",
        max_tokens=60,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls
    assert isinstance(calls[0].function.parsed_arguments, GetWeather)  # type: ignore[union-attr]
