"""Repository for each project's moderation policy: one row per project, or none."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.schema import SafetyPolicyRow
from headrace.storage.tenancy import now


async def get_policy(session: AsyncSession, project_id: str) -> SafetyPolicyRow | None:
    return await session.get(SafetyPolicyRow, project_id)


async def set_policy(
    session: AsyncSession,
    project_id: str,
    *,
    enabled: bool,
    categories: dict[str, dict[str, object]],
) -> SafetyPolicyRow:
    """Replace the project's policy (its project must exist: a foreign key)."""
    row = await session.get(SafetyPolicyRow, project_id)
    if row is None:
        row = SafetyPolicyRow(project_id=project_id)
        session.add(row)
    row.enabled = enabled
    row.categories = categories
    row.updated_at = now()
    await session.flush()
    return row


async def delete_policy(session: AsyncSession, project_id: str) -> bool:
    """Back to the default policy; False when the project had none of its own."""
    row = await session.get(SafetyPolicyRow, project_id)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True
