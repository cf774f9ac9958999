"""`/metrics`: Prometheus exposition of the gateway's metrics and its engines' gauges.

Unauthenticated, as scrapers expect: it carries no tenant data beyond bounded project ids,
and operators who must hide it bind it away at their proxy (see docs/operations.md).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from headrace.api.state import State
from headrace.observability.gpu import read_gpus
from headrace.observability.metrics import CONTENT_TYPE, DeploymentStats
from headrace.routing.registry import ChatModel

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response:
    engines = [
        (m.settings.name, m.engine.stats())
        for m in state.registry.all()
        if isinstance(m, ChatModel)
    ]
    deployments = [
        DeploymentStats(
            d.name, d.model, d.breaker.state.value, d.outstanding, d.failures, d.queue_depth
        )
        for ds in state.router.deployments.values()
        for d in ds
    ]
    text = state.telemetry.metrics.exposition(engines, read_gpus(), deployments)
    return Response(text, media_type=CONTENT_TYPE)
