"""`/v1/models`: the models this gateway serves."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from headrace.api.state import Caller, State
from headrace.protocol.models import Model, ModelList, ModelPricing
from headrace.routing.registry import ChatModel, ServedModel

router = APIRouter(tags=["models"])


def _describe(model: ServedModel) -> Model:
    kind: Literal["chat", "embedding"]
    if isinstance(model, ChatModel):
        kind, capabilities = (
            "chat",
            [
                "chat.completions",
                "completions",
                "streaming",
                "logprobs",
                "tools",
                "json_schema",
            ],
        )
    else:
        kind, capabilities = "embedding", ["embeddings"]
    return Model(
        id=model.settings.name,
        created=model.created,
        owned_by=model.settings.owned_by,
        kind=kind,
        context_window=model.context_window,
        capabilities=capabilities,
        pricing=ModelPricing(
            input_per_1m=model.settings.input_price_per_1m,
            output_per_1m=model.settings.output_price_per_1m,
        ),
    )


@router.get("/v1/models")
async def list_models(state: State, _: Caller) -> ModelList:
    return ModelList(data=[_describe(m) for m in state.registry.all()])


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, state: State, _: Caller) -> Model:
    return _describe(state.registry.get(model_id))
