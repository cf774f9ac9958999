"""`/v1/moderations` shapes (OpenAI's CreateModerationRequest / CreateModerationResponse)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from headrace.protocol.common import NestedModel, RequestModel, WireModel


class TextInput(NestedModel):
    type: Literal["text"]
    text: str


class ImageUrl(NestedModel):
    url: str


class ImageInput(NestedModel):
    type: Literal["image_url"]
    image_url: ImageUrl


InputPart = Annotated[TextInput | ImageInput, Field(discriminator="type")]


class ModerationRequest(RequestModel):
    input: str | list[str] | list[InputPart]
    model: str = "omni-moderation-latest"


class ModerationResult(WireModel):
    flagged: bool
    # Keys are OpenAI's category names ("self-harm/intent" ...), hence plain mappings.
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[Literal["text"]]]


class ModerationResponse(WireModel):
    id: str
    model: str
    results: list[ModerationResult]
