"""Repository for organisations, projects, API keys and admin credentials."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.schema import AdminCredential, ApiKey, Organisation, Project


def now() -> datetime:
    return datetime.now(UTC)


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(12)}"


async def get_or_create_org(session: AsyncSession, name: str) -> Organisation:
    org = await session.scalar(select(Organisation).where(Organisation.name == name))
    if org is None:
        org = Organisation(id=new_id("org"), name=name, created_at=now())
        session.add(org)
        await session.flush()
    return org


async def get_or_create_project(session: AsyncSession, org: Organisation, name: str) -> Project:
    project = await session.scalar(
        select(Project).where(Project.org_id == org.id, Project.name == name)
    )
    if project is None:
        project = Project(id=new_id("proj"), org_id=org.id, name=name, created_at=now())
        session.add(project)
        await session.flush()
    return project


async def add_api_key(
    session: AsyncSession,
    project: Project,
    *,
    name: str,
    prefix: str,
    key_hash: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
) -> ApiKey:
    key = ApiKey(
        id=new_id("key"),
        project_id=project.id,
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        scopes=scopes,
        created_at=now(),
        expires_at=expires_at,
        revoked_at=None,
        allowed_models=allowed_models,
    )
    session.add(key)
    await session.flush()
    return key


async def find_api_key(session: AsyncSession, prefix: str) -> tuple[ApiKey, Project] | None:
    row = (
        await session.execute(
            select(ApiKey, Project)
            .join(Project, Project.id == ApiKey.project_id)
            .where(ApiKey.prefix == prefix)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def list_api_keys(
    session: AsyncSession, *, project_id: str | None = None, key_id: str | None = None
) -> list[tuple[ApiKey, Project]]:
    stmt = (
        select(ApiKey, Project)
        .join(Project, Project.id == ApiKey.project_id)
        .order_by(ApiKey.created_at)
    )
    if project_id is not None:
        stmt = stmt.where(ApiKey.project_id == project_id)
    if key_id is not None:
        stmt = stmt.where(ApiKey.id == key_id)
    return [(k, p) for k, p in (await session.execute(stmt)).tuples()]


async def get_api_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def add_admin_credential(
    session: AsyncSession, *, name: str, prefix: str, key_hash: str
) -> AdminCredential:
    cred = AdminCredential(
        id=new_id("adm"), name=name, prefix=prefix, key_hash=key_hash, created_at=now()
    )
    session.add(cred)
    await session.flush()
    return cred


async def has_admin_credential(session: AsyncSession) -> bool:
    return await session.scalar(select(AdminCredential.id).limit(1)) is not None


async def find_admin_credential(session: AsyncSession, prefix: str) -> AdminCredential | None:
    return await session.scalar(select(AdminCredential).where(AdminCredential.prefix == prefix))


async def get_project(session: AsyncSession, project_id: str) -> Project | None:
    return await session.get(Project, project_id)


async def get_org(session: AsyncSession, org_id: str) -> Organisation | None:
    return await session.get(Organisation, org_id)


async def add_org(session: AsyncSession, name: str) -> Organisation:
    org = Organisation(id=new_id("org"), name=name, created_at=now())
    session.add(org)
    await session.flush()
    return org


async def add_project(
    session: AsyncSession, org: Organisation, name: str, tier: str = "standard"
) -> Project:
    project = Project(id=new_id("proj"), org_id=org.id, name=name, created_at=now(), tier=tier)
    session.add(project)
    await session.flush()
    return project


async def list_orgs(session: AsyncSession) -> list[Organisation]:
    return list(await session.scalars(select(Organisation).order_by(Organisation.created_at)))


async def list_projects(session: AsyncSession, org_id: str | None = None) -> list[Project]:
    stmt = select(Project).order_by(Project.created_at)
    if org_id is not None:
        stmt = stmt.where(Project.org_id == org_id)
    return list(await session.scalars(stmt))


async def find_org_by_name(session: AsyncSession, name: str) -> Organisation | None:
    return await session.scalar(select(Organisation).where(Organisation.name == name))


async def find_project_by_name(session: AsyncSession, org_id: str, name: str) -> Project | None:
    return await session.scalar(
        select(Project).where(Project.org_id == org_id, Project.name == name)
    )
