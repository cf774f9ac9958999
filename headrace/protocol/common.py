"""Shapes shared by several endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WireModel(BaseModel):
    """Base for response shapes: fields are emitted even when None, as OpenAI does."""

    model_config = ConfigDict(extra="forbid")


class RequestModel(BaseModel):
    """Base for request bodies: unknown top-level arguments are rejected, as OpenAI does."""

    model_config = ConfigDict(extra="forbid")


class NestedModel(BaseModel):
    """Base for objects inside a request: unknown keys are ignored, as the SDK may add some."""

    model_config = ConfigDict(extra="ignore")


def _is_none(value: Any) -> bool:
    return value is None


def omitted_when_none() -> Any:
    """A field OpenAI leaves out rather than sending null: its schema does not allow null,
    and strict clients (the schema's own validators) refuse it."""
    return Field(default=None, exclude_if=_is_none)


class PromptTokensDetails(WireModel):
    cached_tokens: int = 0
    audio_tokens: int = 0


class CompletionTokensDetails(WireModel):
    reasoning_tokens: int = 0
    audio_tokens: int = 0
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class Usage(WireModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = PromptTokensDetails()
    completion_tokens_details: CompletionTokensDetails = CompletionTokensDetails()


class ErrorBody(WireModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(WireModel):
    error: ErrorBody


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
