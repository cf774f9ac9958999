"""Builds a model's input from a chat request and fits it into the context window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headrace.context.chat_template import render_chat
from headrace.engine.tokenizer import Tokenizer
from headrace.errors import ContextLengthError, InvalidRequestError


@dataclass(frozen=True, slots=True)
class Prompt:
    token_ids: tuple[int, ...]
    max_tokens: int  # output budget that fits the window


def build_chat_prompt(
    tokenizer: Tokenizer,
    messages: list[dict[str, Any]],
    *,
    context_window: int,
    max_tokens: int | None,
    default_max_tokens: int,
    tools: list[dict[str, Any]] | None = None,
) -> Prompt:
    """Render, tokenise and check the window: a prompt that leaves no room is rejected
    with `context_length_exceeded`, as OpenAI does, before any compute."""
    if tokenizer.chat_template is None:
        raise InvalidRequestError("this model has no chat template; use /v1/completions")
    text = render_chat(
        tokenizer.chat_template,
        messages,
        tools=tools,
        special_tokens={"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token},
    )
    ids = tuple(tokenizer.encode(text))
    return Prompt(ids, fit_output_budget(len(ids), context_window, max_tokens, default_max_tokens))


def fit_output_budget(
    prompt_tokens: int, context_window: int, requested: int | None, default: int
) -> int:
    """The number of tokens the model may produce; raises when the request cannot fit."""
    room = context_window - prompt_tokens
    if (requested is not None and requested > room) or room < 1:
        asked = requested if requested is not None else 1
        raise ContextLengthError(
            f"This model's maximum context length is {context_window} tokens. However, you "
            f"requested {prompt_tokens + asked} tokens ({prompt_tokens} in the messages, "
            f"{asked} in the completion). Please reduce the length of the messages or "
            "completion.",
            param="messages",
        )
    return requested if requested is not None else min(default, room)
