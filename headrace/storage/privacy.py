"""Repository for each project's privacy policy: one row per project, or none."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.schema import PrivacyPolicyRow
from headrace.storage.tenancy import now


async def get_policy(session: AsyncSession, project_id: str) -> PrivacyPolicyRow | None:
    return await session.get(PrivacyPolicyRow, project_id)


async def set_policy(
    session: AsyncSession,
    project_id: str,
    *,
    pii_mode: str,
    pii_kinds: list[str] | None,
    injection_threshold: float,
    injection_action: str,
) -> PrivacyPolicyRow:
    """Replace the project's policy (its project must exist: a foreign key)."""
    row = await session.get(PrivacyPolicyRow, project_id)
    if row is None:
        row = PrivacyPolicyRow(project_id=project_id)
        session.add(row)
    row.pii_mode = pii_mode
    row.pii_kinds = pii_kinds
    row.injection_threshold = injection_threshold
    row.injection_action = injection_action
    row.updated_at = now()
    await session.flush()
    return row


async def delete_policy(session: AsyncSession, project_id: str) -> bool:
    """Back to the settings' defaults; False when the project had no policy."""
    row = await session.get(PrivacyPolicyRow, project_id)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True
