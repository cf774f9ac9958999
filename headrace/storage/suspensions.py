"""Repository for key suspensions: a key refused until a time, unless lifted sooner."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.schema import KeySuspension
from headrace.storage.tenancy import new_id, now


async def suspend(
    session: AsyncSession,
    api_key_id: str,
    *,
    reason: str,
    until: datetime,
    created_by: str,
    detail: Mapping[str, object] | None = None,
) -> KeySuspension:
    row = KeySuspension(
        id=new_id("susp"),
        api_key_id=api_key_id,
        reason=reason,
        detail=dict(detail or {}),
        created_at=now(),
        until=until,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return row


async def active(
    session: AsyncSession, *, api_key_id: str | None = None, at: datetime | None = None
) -> list[KeySuspension]:
    """Suspensions in force at `at` (default now), latest end first; one key's or all."""
    stmt = select(KeySuspension).where(
        KeySuspension.lifted_at.is_(None), KeySuspension.until > (at or now())
    )
    if api_key_id is not None:
        stmt = stmt.where(KeySuspension.api_key_id == api_key_id)
    return list(await session.scalars(stmt.order_by(KeySuspension.until.desc())))


async def suspended_until(session: AsyncSession, api_key_id: str) -> datetime | None:
    """When the key's latest suspension in force ends, or None when it has none."""
    return await session.scalar(
        select(KeySuspension.until)
        .where(
            KeySuspension.api_key_id == api_key_id,
            KeySuspension.lifted_at.is_(None),
            KeySuspension.until > now(),
        )
        .order_by(KeySuspension.until.desc())
        .limit(1)
    )


async def lift(session: AsyncSession, api_key_id: str, *, lifted_by: str) -> list[KeySuspension]:
    """End every suspension of the key in force now; the rows stay, as history."""
    rows = await active(session, api_key_id=api_key_id)
    at = now()
    for row in rows:
        row.lifted_at = at
        row.lifted_by = lifted_by
    await session.flush()
    return rows
