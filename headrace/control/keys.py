"""Creating, listing and revoking API keys, and the first-start bootstrap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from headrace.admission.secrets import ADMIN_KEY_PREFIX, API_KEY_PREFIX, hash_key, new_key
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.storage import tenancy
from headrace.storage.database import Database

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


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    project: str
    redacted: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class FirstStart:
    admin_secret: str
    api_key: CreatedKey


async def create_key(
    db: Database, pepper: str, *, project: str = DEFAULT_PROJECT, name: str = "default"
) -> CreatedKey:
    if not project.strip() or not name.strip():
        raise InvalidRequestError("project and key names must not be empty")
    secret, prefix = new_key(API_KEY_PREFIX)
    async with db.session.begin() as session:
        org = await tenancy.get_or_create_org(session, DEFAULT_ORG)
        proj = await tenancy.get_or_create_project(session, org, project)
        key = await tenancy.add_api_key(
            session,
            proj,
            name=name,
            prefix=prefix,
            key_hash=hash_key(secret, pepper),
            scopes=[INFERENCE_SCOPE],
        )
    return CreatedKey(key.id, secret, name, proj.name, org.id, key.created_at)


async def list_keys(db: Database) -> list[KeyInfo]:
    async with db.session() as session:
        rows = await tenancy.list_api_keys(session)
    return [
        KeyInfo(
            k.id,
            k.name,
            p.name,
            f"{API_KEY_PREFIX}{k.prefix}...",
            k.created_at,
            k.expires_at,
            k.revoked_at,
        )
        for k, p in rows
    ]


async def revoke_key(db: Database, key_id: str) -> None:
    async with db.session.begin() as session:
        key = await tenancy.get_api_key(session, key_id)
        if key is None:
            raise NotFoundError(f"No API key with id {key_id!r}.", param="key_id")
        if key.revoked_at is None:
            key.revoked_at = tenancy.now()


async def bootstrap(db: Database, pepper: str) -> FirstStart | None:
    """On the first start only: an admin credential and a first API key, returned once."""
    async with db.session.begin() as session:
        if await tenancy.has_admin_credential(session):
            return None
        admin_secret, prefix = new_key(ADMIN_KEY_PREFIX)
        await tenancy.add_admin_credential(
            session, name="local-admin", prefix=prefix, key_hash=hash_key(admin_secret, pepper)
        )
    return FirstStart(admin_secret, await create_key(db, pepper, name="first-key"))
