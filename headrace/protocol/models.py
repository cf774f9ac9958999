"""`/v1/models` shapes, with Headrace's extra facts about each model."""

from __future__ import annotations

from typing import Literal

from headrace.protocol.common import WireModel


class Model(WireModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    # Extensions beyond OpenAI's shape; the SDK keeps them as extra attributes.
    kind: Literal["chat", "embedding"]
    context_window: int
    capabilities: list[str]
    pricing: ModelPricing


class ModelPricing(WireModel):
    """USD per million tokens, as the usage ledger charges them."""

    input_per_1m: float
    output_per_1m: float


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[Model]
