"""Authenticating bearer keys against the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from headrace.admission.auth import Authenticator
from headrace.control.keys import create_key, revoke_key
from headrace.errors import AuthenticationError
from headrace.storage.database import Database
from headrace.storage.schema import ApiKey

PEPPER = "test-pepper"


async def _db(url: str) -> Database:
    db = Database(url)
    await db.migrate()
    return db


async def test_valid_key_gives_its_principal(database_url: str) -> None:
    db = await _db(database_url)
    created = await create_key(db, PEPPER, project="alpha", name="k1")
    principal = await Authenticator(db, PEPPER).authenticate(f"Bearer {created.secret}")
    assert principal.key_id == created.id
    assert principal.org_id == created.org_id
    assert principal.scopes == ("inference",)
    await db.close()


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer sk-hr-nope"])
async def test_missing_or_malformed_header(database_url: str, header: str | None) -> None:
    db = await _db(database_url)
    with pytest.raises(AuthenticationError):
        await Authenticator(db, PEPPER).authenticate(header)
    await db.close()


async def test_right_prefix_wrong_secret_is_refused(database_url: str) -> None:
    db = await _db(database_url)
    created = await create_key(db, PEPPER)
    forged = created.secret[:-1] + ("a" if created.secret[-1] != "a" else "b")
    with pytest.raises(AuthenticationError):
        await Authenticator(db, PEPPER).authenticate(f"Bearer {forged}")
    with pytest.raises(AuthenticationError):  # the same key under another pepper
        await Authenticator(db, "other").authenticate(f"Bearer {created.secret}")
    await db.close()


async def test_revocation_bites_once_the_cache_expires(database_url: str) -> None:
    db = await _db(database_url)
    created = await create_key(db, PEPPER)
    auth = Authenticator(db, PEPPER, ttl_s=0)
    await auth.authenticate(f"Bearer {created.secret}")
    await revoke_key(db, created.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        await auth.authenticate(f"Bearer {created.secret}")
    await db.close()


async def test_expired_key_is_refused(database_url: str) -> None:
    db = await _db(database_url)
    created = await create_key(db, PEPPER)
    async with db.session.begin() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == created.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(AuthenticationError, match="expired"):
        await Authenticator(db, PEPPER).authenticate(f"Bearer {created.secret}")
    await db.close()
