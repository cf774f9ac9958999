"""Setting and reading a project's privacy policy (admin API and CLI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from headrace.errors import NotFoundError
from headrace.safety.privacy import PrivacyPolicy
from headrace.storage import audit
from headrace.storage import privacy as policy_rows
from headrace.storage.database import Database
from headrace.storage.schema import Project


@dataclass(frozen=True, slots=True)
class ProjectPolicy:
    project_id: str
    policy: PrivacyPolicy
    is_default: bool  # the project has no policy of its own: the settings' defaults apply


async def get_policy(db: Database, project_id: str, defaults: PrivacyPolicy) -> ProjectPolicy:
    async with db.session() as session:
        await _project(session, project_id)
        row = await policy_rows.get_policy(session, project_id)
    if row is None:
        return ProjectPolicy(project_id, defaults, is_default=True)
    return ProjectPolicy(project_id, PrivacyPolicy.from_row(row), is_default=False)


async def set_policy(
    db: Database,
    project_id: str,
    policy: PrivacyPolicy,
    *,
    actor: audit.Actor = audit.SYSTEM,
) -> ProjectPolicy:
    """Replace the project's policy; every replica applies it within
    `privacy.policy_cache_ttl_s`."""
    async with db.session.begin() as session:
        await _project(session, project_id)
        old = await policy_rows.get_policy(session, project_id)
        before = asdict(PrivacyPolicy.from_row(old)) if old is not None else None
        await policy_rows.set_policy(
            session,
            project_id,
            pii_mode=policy.pii_mode,
            pii_kinds=None if policy.pii_kinds is None else list(policy.pii_kinds),
            injection_threshold=policy.injection_threshold,
            injection_action=policy.injection_action,
        )
        await audit.record(
            session,
            actor,
            "privacy_policy.set",
            audit.Target("privacy_policy", project_id),
            before=before,
            after=asdict(policy),
        )
    return ProjectPolicy(project_id, policy, is_default=False)


async def reset_policy(
    db: Database,
    project_id: str,
    defaults: PrivacyPolicy,
    *,
    actor: audit.Actor = audit.SYSTEM,
) -> ProjectPolicy:
    """Drop the project's own policy: the settings' defaults apply again."""
    async with db.session.begin() as session:
        await _project(session, project_id)
        old = await policy_rows.get_policy(session, project_id)
        if old is not None:
            before = asdict(PrivacyPolicy.from_row(old))
            await policy_rows.delete_policy(session, project_id)
            await audit.record(
                session,
                actor,
                "privacy_policy.reset",
                audit.Target("privacy_policy", project_id),
                before=before,
            )
    return ProjectPolicy(project_id, defaults, is_default=True)


async def _project(session: AsyncSession, project_id: str) -> None:
    if await session.get(Project, project_id) is None:
        raise NotFoundError(f"No project with id {project_id!r}.", param="project_id")
