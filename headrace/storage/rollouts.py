"""Repository for rollouts: one row per model that has one, or none."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.schema import RolloutRow
from headrace.storage.tenancy import now


async def list_rollouts(session: AsyncSession) -> list[RolloutRow]:
    return list(await session.scalars(select(RolloutRow).order_by(RolloutRow.model)))


async def get_rollout(session: AsyncSession, model: str) -> RolloutRow | None:
    return await session.get(RolloutRow, model)


async def set_rollout(
    session: AsyncSession, model: str, weights: Mapping[str, float]
) -> RolloutRow:
    """Replace the model's weights (checked by the caller: `control/rollouts.py`)."""
    row = await session.get(RolloutRow, model)
    if row is None:
        row = RolloutRow(model=model)
        session.add(row)
    row.weights = dict(weights)
    row.updated_at = now()
    await session.flush()
    return row


async def delete_rollout(session: AsyncSession, model: str) -> bool:
    """Back to no rollout; False when the model had none."""
    row = await session.get(RolloutRow, model)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True
