"""Our sandboxed renderer and `transformers` render the bundled template identically."""

from __future__ import annotations

from typing import Any

import pytest
from transformers import AutoTokenizer

from headrace.config import BUNDLED_MODELS_DIR
from headrace.context.chat_template import render_chat
from headrace.engine.tokenizer import Tokenizer
from tests.fakes import with_tool_result

MODEL_DIR = BUNDLED_MODELS_DIR / "headrace-tiny-chat"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city <now> & later",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CONVERSATIONS: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = [
    ([{"role": "user", "content": "Hi"}], None),
    (
        [
            {"role": "system", "content": "Be brief."},
            *with_tool_result("sunny, 21 C", question="Weather in Paris?"),
        ],
        TOOLS,
    ),
    ([{"role": "developer", "content": "Rules."}, {"role": "user", "content": "ok"}], TOOLS),
]


@pytest.mark.parametrize(("messages", "tools"), CONVERSATIONS)
def test_render_matches_transformers(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> None:
    ours = Tokenizer(MODEL_DIR)
    assert ours.chat_template is not None
    theirs = AutoTokenizer.from_pretrained(MODEL_DIR)
    expected = theirs.apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=False
    )
    rendered = render_chat(
        ours.chat_template,
        messages,
        tools=tools,
        special_tokens={"bos_token": ours.bos_token, "eos_token": ours.eos_token},
    )
    assert rendered == expected
