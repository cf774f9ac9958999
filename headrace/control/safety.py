"""Setting and reading a project's moderation policy (admin API and CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from headrace.errors import NotFoundError
from headrace.safety.policy import (
    SafetyPolicy,
    categories_to_dict,
    policy_from_dict,
    policy_to_dict,
)
from headrace.storage import audit
from headrace.storage import safety as policy_rows
from headrace.storage.database import Database
from headrace.storage.schema import Project, SafetyPolicyRow


@dataclass(frozen=True, slots=True)
class ProjectPolicy:
    project_id: str
    policy: SafetyPolicy
    is_default: bool  # the project has no policy of its own: the default applies


def from_row(row: SafetyPolicyRow) -> SafetyPolicy:
    """A stored policy; categories added to the model since it was written get their
    defaults."""
    return policy_from_dict({"enabled": row.enabled, "categories": row.categories})


async def get_policy(db: Database, project_id: str) -> ProjectPolicy:
    async with db.session() as session:
        await _project(session, project_id)
        row = await policy_rows.get_policy(session, project_id)
    if row is None:
        return ProjectPolicy(project_id, SafetyPolicy.default(), is_default=True)
    return ProjectPolicy(project_id, from_row(row), is_default=False)


async def set_policy(
    db: Database, project_id: str, policy: SafetyPolicy, *, actor: audit.Actor = audit.SYSTEM
) -> ProjectPolicy:
    """Replace the project's policy, in one transaction with its audit event; every
    replica applies it within `safety.policy_cache_ttl_s`."""
    async with db.session.begin() as session:
        await _project(session, project_id)
        old = await policy_rows.get_policy(session, project_id)
        before = policy_to_dict(from_row(old)) if old is not None else None
        await policy_rows.set_policy(
            session, project_id, enabled=policy.enabled, categories=categories_to_dict(policy)
        )
        await audit.record(
            session,
            actor,
            "safety_policy.set",
            audit.Target("safety_policy", project_id),
            before=before,
            after=policy_to_dict(policy),
        )
    return ProjectPolicy(project_id, policy, is_default=False)


async def reset_policy(
    db: Database, project_id: str, *, actor: audit.Actor = audit.SYSTEM
) -> ProjectPolicy:
    """Drop the project's own policy: the default applies again."""
    async with db.session.begin() as session:
        await _project(session, project_id)
        old = await policy_rows.get_policy(session, project_id)
        if old is not None:
            before = policy_to_dict(from_row(old))
            await policy_rows.delete_policy(session, project_id)
            await audit.record(
                session,
                actor,
                "safety_policy.reset",
                audit.Target("safety_policy", project_id),
                before=before,
            )
    return ProjectPolicy(project_id, SafetyPolicy.default(), is_default=True)


async def _project(session: AsyncSession, project_id: str) -> None:
    if await session.get(Project, project_id) is None:
        raise NotFoundError(f"No project with id {project_id!r}.", param="project_id")
