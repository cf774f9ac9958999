"""`/v1/completions` (legacy) through the official SDK."""

from __future__ import annotations

import openai
import pytest

MODEL = "headrace-tiny-chat"
PROMPT = "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"


def test_completion_of_a_string(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    assert r.object == "text_completion"
    assert r.id.startswith("cmpl-")
    assert len(r.choices) == 1
    assert r.choices[0].finish_reason in {"stop", "length"}
    assert r.usage is not None
    assert 0 < r.usage.completion_tokens <= 12


def test_list_of_prompts_and_n(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt=[PROMPT, "Hello"], n=2, max_tokens=4, seed=5)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]


def test_token_id_prompt_matches_text_prompt(client: openai.OpenAI) -> None:
    from headrace.config import BUNDLED_MODELS_DIR
    from headrace.engine.tokenizer import Tokenizer

    ids = Tokenizer(BUNDLED_MODELS_DIR / MODEL).encode(PROMPT)
    text = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    tokens = client.completions.create(model=MODEL, prompt=ids, max_tokens=8, temperature=0)
    assert tokens.choices[0].text == text.choices[0].text
    assert tokens.usage is not None
    assert tokens.usage.prompt_tokens == len(ids)


def test_echo_prepends_the_prompt(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt="Hello", echo=True, max_tokens=3)
    assert r.choices[0].text.startswith("Hello")


def test_logprobs(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=2
    )
    lp = r.choices[0].logprobs
    assert lp is not None
    assert lp.tokens is not None
    assert len(lp.tokens) == len(lp.token_logprobs or [])
    assert lp.top_logprobs is not None
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    assert lp.text_offset is not None
    assert lp.text_offset[0] == 0


def test_streaming_matches(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10, temperature=0)
    parts = list(
        client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=10, temperature=0, stream=True
        )
    )
    assert "".join(p.choices[0].text for p in parts if p.choices) == whole.choices[0].text
    assert parts[-1].choices[0].finish_reason == whole.choices[0].finish_reason


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"suffix": "x"}, "suffix"),
        ({"best_of": 3}, "best_of"),
        ({"echo": True, "logprobs": 1}, "echo"),
        ({"prompt": []}, "prompt"),
        ({"prompt": [10**8]}, "prompt"),
        ({"max_tokens": 10**6}, "messages"),
    ],
)
def test_bad_input(client: openai.OpenAI, kwargs: dict[str, object], param: str) -> None:
    args: dict[str, object] = {"model": MODEL, "prompt": PROMPT} | kwargs
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(**args)  # type: ignore[call-overload]
    assert info.value.param == param
