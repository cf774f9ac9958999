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


async def list_api_keys(session: AsyncSession) -> list[tuple[ApiKey, Project]]:
    rows = await session.execute(
        select(ApiKey, Project)
        .join(Project, Project.id == ApiKey.project_id)
        .order_by(ApiKey.created_at)
    )
    return [(k, p) for k, p in rows.tuples()]


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
