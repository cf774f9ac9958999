"""Setting and reading a model's rollout: weights between the versions of its deployments
(admin API and CLI). Every replica's router applies a change within
`routing.rollout_cache_ttl_s` (`routing/rollouts.py`); clearing it is the instant rollback:
every deployment of the model serves again, as without a rollout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from headrace.config import ModelSettings
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.routing.rollouts import canonical
from headrace.storage import audit
from headrace.storage import rollouts as rollout_rows
from headrace.storage.database import Database


@dataclass(frozen=True, slots=True)
class Rollout:
    model: str
    weights: dict[str, float]  # empty: no rollout, every deployment serves
    versions: tuple[str, ...]  # what the model's deployments run, sorted
    updated_at: datetime | None = None


def model_versions(models: Sequence[ModelSettings], model: str) -> tuple[str, ...]:
    """The versions `model`'s deployments run (from the configuration), sorted; 404 for a
    model not served, 400 for one that runs in this process (it has no versions to weigh)."""
    found = next((m for m in models if m.name == model), None)
    if found is None:
        raise NotFoundError(
            f"The model `{model}` does not exist.", param="model", code="model_not_found"
        )
    if not found.deployments:
        raise InvalidRequestError(
            f"The model `{model}` runs in this process, not on deployments: it has no "
            "versions to roll out.",
            param="model",
        )
    return tuple(sorted({d.version for d in found.deployments}))


def checked_weights(weights: Mapping[str, float], versions: Sequence[str]) -> dict[str, float]:
    """`weights` if they make a rollout of these `versions`, else 400 saying why."""
    unknown = sorted(set(weights) - set(versions))
    if unknown:
        raise InvalidRequestError(
            f"Unknown version(s) {', '.join(map(repr, unknown))}: the model's deployments "
            f"run {', '.join(map(repr, versions))}.",
            param="weights",
            code="invalid_value",
        )
    bad = sorted(v for v, w in weights.items() if not math.isfinite(w) or w < 0)
    if bad:
        raise InvalidRequestError(
            f"Weights must be finite and at least 0; not so for {', '.join(map(repr, bad))}.",
            param="weights",
            code="invalid_value",
        )
    if not any(w > 0 for w in weights.values()):
        raise InvalidRequestError(
            "A rollout needs at least one version with a positive weight (to roll back, "
            "clear the rollout).",
            param="weights",
            code="invalid_value",
        )
    return {version: float(w) for version, w in canonical(weights)}


async def get_rollout(db: Database, models: Sequence[ModelSettings], model: str) -> Rollout:
    versions = model_versions(models, model)
    async with db.session() as session:
        row = await rollout_rows.get_rollout(session, model)
    if row is None:
        return Rollout(model, {}, versions)
    return Rollout(model, dict(row.weights), versions, row.updated_at)


async def set_rollout(
    db: Database,
    models: Sequence[ModelSettings],
    model: str,
    weights: Mapping[str, float],
    *,
    actor: audit.Actor = audit.SYSTEM,
) -> Rollout:
    """Replace the model's weights, checked whole first, in one transaction with its audit
    event."""
    versions = model_versions(models, model)
    checked = checked_weights(weights, versions)
    async with db.session.begin() as session:
        old = await rollout_rows.get_rollout(session, model)
        before = dict(old.weights) if old is not None else None
        row = await rollout_rows.set_rollout(session, model, checked)
        await audit.record(
            session,
            actor,
            "rollout.set",
            audit.Target("rollout", model),
            before={"weights": before},
            after={"weights": checked},
        )
        updated_at = row.updated_at
    return Rollout(model, checked, versions, updated_at)


async def clear_rollout(
    db: Database, models: Sequence[ModelSettings], model: str, *, actor: audit.Actor = audit.SYSTEM
) -> Rollout:
    """Drop the model's rollout: every deployment serves again (the instant rollback)."""
    versions = model_versions(models, model)
    async with db.session.begin() as session:
        old = await rollout_rows.get_rollout(session, model)
        if old is not None:
            before = dict(old.weights)
            await rollout_rows.delete_rollout(session, model)
            await audit.record(
                session,
                actor,
                "rollout.clear",
                audit.Target("rollout", model),
                before={"weights": before},
            )
    return Rollout(model, {}, versions)
