"""Creating, listing and revoking API keys, and the first-start bootstrap."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from headrace.admission.limits import Limits
from headrace.admission.secrets import ADMIN_KEY_PREFIX, API_KEY_PREFIX, hash_key, new_key
from headrace.control.limits import check_limits
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.storage import audit, tenancy
from headrace.storage import limits as limit_rows
from headrace.storage.database import Database
from headrace.storage.schema import Project

DEFAULT_ORG = "default"
DEFAULT_PROJECT = "default"
INFERENCE_SCOPE = "inference"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key. `secret` is shown once and never stored."""

    id: str
    secret: str
    name: str
    project: str
    org_id: str
    created_at: datetime
    project_id: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    project: str
    redacted: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    project_id: str = ""
    org_id: str = ""
    allowed_models: list[str] | None = None


@dataclass(frozen=True, slots=True)
class FirstStart:
    admin_secret: str
    api_key: CreatedKey


async def create_key(
    db: Database,
    pepper: str,
    *,
    project: str = DEFAULT_PROJECT,
    name: str = "default",
    limits: Limits | None = None,
    actor: audit.Actor = audit.SYSTEM,
) -> CreatedKey:
    """A key in the default org's project `project` (created if new), with its limits,
    in one transaction with its audit event: bad limits leave nothing behind."""
    if not project.strip() or not name.strip():
        raise InvalidRequestError("project and key names must not be empty")
    check_limits(limits or Limits())
    async with db.session.begin() as session:
        org = await tenancy.get_or_create_org(session, DEFAULT_ORG)
        proj = await tenancy.get_or_create_project(session, org, project)
        return await _add_key(session, pepper, proj, org.id, name=name, limits=limits, actor=actor)


async def create_project_key(
    db: Database,
    pepper: str,
    *,
    project_id: str,
    name: str,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    limits: Limits | None = None,
    actor: audit.Actor = audit.SYSTEM,
) -> CreatedKey:
    """A key in an existing project: the admin API's way. All checks come first."""
    if not name.strip():
        raise InvalidRequestError("'name' must not be empty.", param="name")
    if expires_at is not None and _aware(expires_at) <= tenancy.now():
        raise InvalidRequestError("'expires_at' must be in the future.", param="expires_at")
    if allowed_models is not None and not all(m.strip() for m in allowed_models):
        raise InvalidRequestError("model names must not be empty.", param="allowed_models")
    check_limits(limits or Limits())
    async with db.session.begin() as session:
        proj = await tenancy.get_project(session, project_id)
        if proj is None:
            raise NotFoundError(f"No project with id {project_id!r}.", param="project_id")
        return await _add_key(
            session,
            pepper,
            proj,
            proj.org_id,
            name=name,
            expires_at=expires_at,
            allowed_models=allowed_models,
            limits=limits,
            actor=actor,
        )


async def _add_key(
    session: AsyncSession,
    pepper: str,
    proj: Project,
    org_id: str,
    *,
    name: str,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    limits: Limits | None = None,
    actor: audit.Actor = audit.SYSTEM,
) -> CreatedKey:
    secret, prefix = new_key(API_KEY_PREFIX)
    key = await tenancy.add_api_key(
        session,
        proj,
        name=name,
        prefix=prefix,
        key_hash=hash_key(secret, pepper),
        scopes=[INFERENCE_SCOPE],
        expires_at=expires_at,
        allowed_models=allowed_models,
    )
    if limits is not None and not limits.is_empty():
        await limit_rows.set_limits(session, "key", key.id, **asdict(limits))
    after = {
        "name": name,
        "project_id": proj.id,
        "org_id": org_id,
        "scopes": key.scopes,
        "expires_at": expires_at,
        "allowed_models": allowed_models,
        "limits": asdict(limits) if limits is not None else None,
    }
    await audit.record(session, actor, "key.create", audit.Target("api_key", key.id), after=after)
    return CreatedKey(key.id, secret, name, proj.name, org_id, key.created_at, proj.id, expires_at)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def list_keys(
    db: Database, *, project_id: str | None = None, key_id: str | None = None
) -> list[KeyInfo]:
    async with db.session() as session:
        rows = await tenancy.list_api_keys(session, project_id=project_id, key_id=key_id)
    return [
        KeyInfo(
            k.id,
            k.name,
            p.name,
            f"{API_KEY_PREFIX}{k.prefix}...",
            k.created_at,
            k.expires_at,
            k.revoked_at,
            p.id,
            p.org_id,
            None if k.allowed_models is None else list(k.allowed_models),
        )
        for k, p in rows
    ]


async def revoke_key(db: Database, key_id: str, *, actor: audit.Actor = audit.SYSTEM) -> None:
    async with db.session.begin() as session:
        key = await tenancy.get_api_key(session, key_id)
        if key is None:
            raise NotFoundError(f"No API key with id {key_id!r}.", param="key_id")
        if key.revoked_at is None:
            key.revoked_at = tenancy.now()
            await audit.record(
                session,
                actor,
                "key.revoke",
                audit.Target("api_key", key_id),
                before={"revoked_at": None},
                after={"revoked_at": key.revoked_at},
            )


async def bootstrap(db: Database, pepper: str) -> FirstStart | None:
    """On the first start only: an admin credential and a first API key, returned once."""
    async with db.session.begin() as session:
        if await tenancy.has_admin_credential(session):
            return None
        admin_secret, prefix = new_key(ADMIN_KEY_PREFIX)
        cred = await tenancy.add_admin_credential(
            session, name="local-admin", prefix=prefix, key_hash=hash_key(admin_secret, pepper)
        )
        await audit.record(
            session,
            audit.SYSTEM,
            "admin_credential.create",
            audit.Target("admin_credential", cred.id),
            after={"name": cred.name},
        )
    return FirstStart(admin_secret, await create_key(db, pepper, name="first-key"))
