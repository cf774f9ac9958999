"""Chat template rendering and the context-window budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headrace.context.chat_template import render_chat
from headrace.context.prompt import fit_output_budget
from headrace.errors import ContextLengthError, InvalidRequestError

TEMPLATE = (
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
    "{% if tools %}{{ tools | tojson }}{% endif %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_render_messages_and_generation_prompt() -> None:
    text = render_chat(TEMPLATE, [{"role": "user", "content": "hi"}])
    assert text == "<user>hi</user><assistant>"


def test_tojson_is_plain_json_not_html_escaped() -> None:
    tools = [{"name": "a<b>&c", "x": "é"}]
    text = render_chat(TEMPLATE, [], tools=tools, add_generation_prompt=False)
    assert text == '[{"name": "a<b>&c", "x": "é"}]'


def test_template_exception_becomes_400() -> None:
    with pytest.raises(InvalidRequestError, match="only users"):
        render_chat("{{ raise_exception('only users') }}", [])


def test_sandbox_refuses_unsafe_access() -> None:
    with pytest.raises(InvalidRequestError):
        render_chat("{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}", [])


def test_budget_defaults_to_what_fits() -> None:
    assert fit_output_budget(100, 2048, None, 256) == 256
    assert fit_output_budget(2000, 2048, None, 256) == 48
    assert fit_output_budget(100, 2048, 1948, 256) == 1948


def test_budget_rejects_what_cannot_fit() -> None:
    with pytest.raises(ContextLengthError) as info:
        fit_output_budget(100, 2048, 1949, 256)
    assert info.value.code == "context_length_exceeded"
    assert "2049 tokens" in info.value.message
    with pytest.raises(ContextLengthError):
        fit_output_budget(2048, 2048, None, 256)


@given(st.integers(1, 5000), st.integers(1, 4096), st.none() | st.integers(1, 5000))
def test_budget_never_overflows_the_window(prompt: int, window: int, asked: int | None) -> None:
    try:
        budget = fit_output_budget(prompt, window, asked, 256)
    except ContextLengthError:
        assert prompt >= window or (asked is not None and prompt + asked > window)
    else:
        assert budget >= 1
        assert prompt + budget <= window
