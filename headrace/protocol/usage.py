"""`/v1/organization/usage/{completions,embeddings}` and `/v1/organization/costs`: OpenAI's
page shapes."""

from __future__ import annotations

from typing import Literal

from headrace.protocol.common import WireModel


class UsageCompletionsResult(WireModel):
    object: Literal["organization.usage.completions.result"] = (
        "organization.usage.completions.result"
    )
    input_tokens: int
    input_cached_tokens: int
    input_uncached_tokens: int
    output_tokens: int
    input_text_tokens: int
    output_text_tokens: int
    input_cached_text_tokens: int
    input_audio_tokens: int = 0
    input_cached_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0
    input_cached_image_tokens: int = 0
    output_image_tokens: int = 0
    num_model_requests: int
    project_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    model: str | None = None
    batch: bool | None = None
    service_tier: str | None = None


class UsageEmbeddingsResult(WireModel):
    object: Literal["organization.usage.embeddings.result"] = "organization.usage.embeddings.result"
    input_tokens: int
    num_model_requests: int
    project_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    model: str | None = None


class CostAmount(WireModel):
    value: float
    currency: Literal["usd"] = "usd"


class CostsResult(WireModel):
    object: Literal["organization.costs.result"] = "organization.costs.result"
    amount: CostAmount
    line_item: str | None = None
    project_id: str | None = None
    api_key_id: str | None = None
    quantity: float | None = None
    quantity_unit: str | None = None


class UsageTimeBucket(WireModel):
    object: Literal["bucket"] = "bucket"
    start_time: int
    end_time: int
    results: list[UsageCompletionsResult] | list[UsageEmbeddingsResult] | list[CostsResult]


class UsageResponse(WireModel):
    object: Literal["page"] = "page"
    data: list[UsageTimeBucket]
    has_more: bool
    next_page: str | None
