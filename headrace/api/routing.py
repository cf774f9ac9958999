"""The route stage of a proxied request: its model's rollout (cached), its conversation and
its priority to the router's plan. A request that finds every deployment at its bound is
refused here, before admission reserves anything, and counted as shed (`overload`)."""

from __future__ import annotations

from dataclasses import dataclass

from headrace.admission.auth import Principal
from headrace.api.state import AppState
from headrace.errors import ServiceUnavailableError
from headrace.observability.request import RequestRecord
from headrace.routing.router import Deployment


@dataclass(frozen=True, slots=True)
class RouteHints:
    # The conversation (routing/affinity.py): its deployment while healthy, its version.
    affinity: str | None = None
    batch: bool = False  # batch work: shed at half of each deployment's bound


async def route(
    state: AppState, caller: Principal, record: RequestRecord, model: str, hints: RouteHints
) -> list[Deployment]:
    """The deployments to try for `model`, in order. Under a rollout the version sticks to
    the conversation, else to the request."""
    rollouts = await state.rollouts.current()
    try:
        plan = state.router.plan(
            model,
            tier=caller.tier,
            affinity=hints.affinity,
            rollouts=rollouts,
            sticky_key=hints.affinity or record.request_id or None,
            batch=hints.batch,
        )
    except ServiceUnavailableError as exc:
        if exc.code == "overloaded":
            record.rejection = "overload"
        raise
    record.mark("route")
    return plan
