"""Organisations and projects: creating and listing them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from headrace.errors import ConflictError, InvalidRequestError, NotFoundError
from headrace.storage import tenancy
from headrace.storage.database import Database

MAX_NAME = 200


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


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidRequestError(
            f"'name' must be 1 to {MAX_NAME} characters.", param="name", code="invalid_value"
        )
    return name


async def create_org(db: Database, name: str) -> OrgInfo:
    name = check_name(name)
    async with db.session.begin() as session:
        if await tenancy.find_org_by_name(session, name) is not None:
            raise ConflictError(f"An organization named {name!r} exists.", param="name")
        org = await tenancy.add_org(session, name)
    return OrgInfo(org.id, org.name, org.created_at)


async def list_orgs(db: Database) -> list[OrgInfo]:
    async with db.session() as session:
        return [OrgInfo(o.id, o.name, o.created_at) for o in await tenancy.list_orgs(session)]


async def create_project(db: Database, org_id: str, name: str) -> ProjectInfo:
    name = check_name(name)
    async with db.session.begin() as session:
        org = await tenancy.get_org(session, org_id)
        if org is None:
            raise NotFoundError(f"No organization with id {org_id!r}.", param="org_id")
        if await tenancy.find_project_by_name(session, org_id, name) is not None:
            raise ConflictError(f"A project named {name!r} exists in {org_id}.", param="name")
        project = await tenancy.add_project(session, org, name)
    return ProjectInfo(project.id, project.org_id, project.name, project.created_at)


async def list_projects(db: Database, org_id: str | None = None) -> list[ProjectInfo]:
    async with db.session() as session:
        rows = await tenancy.list_projects(session, org_id)
    return [ProjectInfo(p.id, p.org_id, p.name, p.created_at) for p in rows]
