"""`/admin/v1/models/{model}/rollout`: a model's traffic split between the versions of its
deployments (a canary), for operators (admin keys only). See docs/operations.md, "Routing".

A change is in force on this replica at once and on every other within
`routing.rollout_cache_ttl_s`; DELETE is the instant rollback to no rollout.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from headrace.api.state import Admin, Auditor, State
from headrace.control import rollouts as rollout_service
from headrace.protocol.admin import Rollout, RolloutBody

router = APIRouter(prefix="/admin/v1", tags=["admin"])
# `:path`: a model's public name may hold slashes (`org/model`).
PATH = "/models/{model:path}/rollout"


@router.get(PATH)
async def get_rollout(model: str, state: State, _: Admin) -> Rollout:
    return _wire(await rollout_service.get_rollout(state.db, state.settings.models, model))


@router.put(PATH)
async def set_rollout(model: str, body: RolloutBody, state: State, actor: Auditor) -> Rollout:
    """Replace the model's weights, checked whole before anything is written."""
    found = await rollout_service.set_rollout(
        state.db, state.settings.models, model, body.weights, actor=actor
    )
    state.rollouts.invalidate()
    return _wire(found)


@router.delete(PATH)
async def clear_rollout(model: str, state: State, actor: Auditor) -> Rollout:
    """No rollout: every deployment of the model serves again."""
    found = await rollout_service.clear_rollout(state.db, state.settings.models, model, actor=actor)
    state.rollouts.invalidate()
    return _wire(found)


def _wire(found: rollout_service.Rollout) -> Rollout:
    return Rollout(
        model=found.model,
        weights=found.weights,
        versions=list(found.versions),
        updated_at=_unix(found.updated_at) if found.updated_at else None,
    )


def _unix(value: datetime) -> int:
    """SQLite hands back naive datetimes; they were written as UTC."""
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
