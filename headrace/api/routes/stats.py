"""`/stats`: each chat model's engine load, for routers and operators (no tenant data)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from headrace.api.state import State
from headrace.routing.registry import ChatModel

router = APIRouter(tags=["health"])


@router.get("/stats")
async def stats(state: State) -> dict[str, Any]:
    """Waiting and running sequences, KV cache usage and prefix-cache hit rate per model."""
    return {
        "models": {
            m.settings.name: asdict(m.engine.stats())
            for m in state.registry.all()
            if isinstance(m, ChatModel)
        }
    }
