"""`/tokenize` and `/detokenize`: the model's own tokenizer, the one every count comes from."""

from __future__ import annotations

from fastapi import APIRouter

from headrace.api.chat_request import template_messages
from headrace.api.state import Caller, State
from headrace.context.chat_template import render_chat
from headrace.errors import InvalidRequestError
from headrace.protocol.tokenize import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)

router = APIRouter(tags=["tokenizer"])


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, state: State, _: Caller) -> TokenizeResponse:
    model = state.registry.chat(body.model)
    tokenizer = model.tokenizer
    if (body.prompt is None) == (body.messages is None):
        raise InvalidRequestError("Give exactly one of 'prompt' and 'messages'.", param="prompt")
    if body.messages is not None:
        if tokenizer.chat_template is None:
            raise InvalidRequestError("This model has no chat template.", param="messages")
        text = render_chat(
            tokenizer.chat_template,
            template_messages(body.messages),
            add_generation_prompt=body.add_generation_prompt,
            special_tokens={"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token},
        )
    else:
        text = body.prompt or ""
    ids = tokenizer.encode(text)
    return TokenizeResponse(count=len(ids), max_model_len=model.context_window, tokens=ids)


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, state: State, _: Caller) -> DetokenizeResponse:
    tokenizer = state.registry.chat(body.model).tokenizer
    if any(not 0 <= t < tokenizer.vocab_size for t in body.tokens):
        raise InvalidRequestError("'tokens' has ids outside the vocabulary.", param="tokens")
    return DetokenizeResponse(prompt=tokenizer.decode(body.tokens, skip_special_tokens=False))
