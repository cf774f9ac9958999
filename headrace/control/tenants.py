"""Organisations and projects: creating and listing them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from headrace.errors import ConflictError, InvalidRequestError, NotFoundError
from headrace.storage import audit, tenancy
from headrace.storage.database import Database
from headrace.storage.schema import Project

MAX_NAME = 200
# Tiers are labels on metrics and in deployments' `tiers`: short, and few by design.
TIER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class OrgInfo:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    id: str
    org_id: str
    name: str
    created_at: datetime
    tier: str = "standard"


def check_tier(tier: str) -> str:
    if not TIER.match(tier):
        raise InvalidRequestError(
            "'tier' must be 1 to 32 lower-case letters, digits, '-' or '_'.",
            param="tier",
            code="invalid_value",
        )
    return tier


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidRequestError(
            f"'name' must be 1 to {MAX_NAME} characters.", param="name", code="invalid_value"
        )
    return name


async def create_org(db: Database, name: str, *, actor: audit.Actor = audit.SYSTEM) -> OrgInfo:
    name = check_name(name)
    async with db.session.begin() as session:
        if await tenancy.find_org_by_name(session, name) is not None:
            raise ConflictError(f"An organization named {name!r} exists.", param="name")
        org = await tenancy.add_org(session, name)
        await audit.record(
            session,
            actor,
            "organization.create",
            audit.Target("organization", org.id),
            after={"name": name},
        )
    return OrgInfo(org.id, org.name, org.created_at)


async def list_orgs(db: Database) -> list[OrgInfo]:
    async with db.session() as session:
        return [OrgInfo(o.id, o.name, o.created_at) for o in await tenancy.list_orgs(session)]


async def create_project(
    db: Database,
    org_id: str,
    name: str,
    *,
    tier: str = "standard",
    actor: audit.Actor = audit.SYSTEM,
) -> ProjectInfo:
    name, tier = check_name(name), check_tier(tier)
    async with db.session.begin() as session:
        org = await tenancy.get_org(session, org_id)
        if org is None:
            raise NotFoundError(f"No organization with id {org_id!r}.", param="org_id")
        if await tenancy.find_project_by_name(session, org_id, name) is not None:
            raise ConflictError(f"A project named {name!r} exists in {org_id}.", param="name")
        project = await tenancy.add_project(session, org, name, tier)
        await audit.record(
            session,
            actor,
            "project.create",
            audit.Target("project", project.id),
            after={"org_id": org_id, "name": name, "tier": tier},
        )
    return _info(project)


async def set_project_tier(
    db: Database, project_id: str, tier: str, *, actor: audit.Actor = audit.SYSTEM
) -> ProjectInfo:
    """Move a project to `tier`; its keys see it within the key cache's TTL."""
    tier = check_tier(tier)
    async with db.session.begin() as session:
        project = await tenancy.get_project(session, project_id)
        if project is None:
            raise NotFoundError(f"No project with id {project_id!r}.", param="project_id")
        before = project.tier
        project.tier = tier
        await audit.record(
            session,
            actor,
            "project.update",
            audit.Target("project", project.id),
            before={"tier": before},
            after={"tier": tier},
        )
    return _info(project)


def _info(p: Project) -> ProjectInfo:
    return ProjectInfo(p.id, p.org_id, p.name, p.created_at, p.tier)


async def list_projects(db: Database, org_id: str | None = None) -> list[ProjectInfo]:
    async with db.session() as session:
        rows = await tenancy.list_projects(session, org_id)
    return [_info(p) for p in rows]
