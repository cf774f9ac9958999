"""`/tokenize` and `/detokenize` shapes, as vLLM serves them."""

from __future__ import annotations

from pydantic import Field

from headrace.protocol.chat import Message
from headrace.protocol.common import RequestModel, WireModel


class TokenizeRequest(RequestModel):
    """Either `prompt` (raw text) or `messages` (rendered with the chat template)."""

    model: str
    prompt: str | None = None
    messages: list[Message] | None = None
    add_generation_prompt: bool = True


class TokenizeResponse(WireModel):
    count: int
    max_model_len: int
    tokens: list[int]


class DetokenizeRequest(RequestModel):
    model: str
    tokens: list[int] = Field(max_length=1_000_000)


class DetokenizeResponse(WireModel):
    prompt: str
