"""Key suspensions for operators: list them, suspend a key by hand, lift a suspension."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from headrace.admission.abuse import suspension_view
from headrace.errors import InvalidRequestError, NotFoundError
from headrace.storage import audit, suspensions, tenancy
from headrace.storage.database import Database
from headrace.storage.schema import KeySuspension

MAX_SUSPENSION_S = 365 * 86_400


@dataclass(frozen=True, slots=True)
class SuspensionView:
    id: str
    api_key_id: str
    reason: str
    detail: dict[str, object]
    created_at: datetime
    until: datetime
    created_by: str
    lifted_at: datetime | None
    lifted_by: str | None


async def list_active(db: Database, *, api_key_id: str | None = None) -> list[SuspensionView]:
    async with db.session() as session:
        return [_view(r) for r in await suspensions.active(session, api_key_id=api_key_id)]


async def suspend(
    db: Database, api_key_id: str, *, duration_s: float, note: str | None, actor: audit.Actor
) -> SuspensionView:
    """Suspend a key by hand for `duration_s` seconds."""
    if not 0 < duration_s <= MAX_SUSPENSION_S:
        raise InvalidRequestError(
            f"'duration_s' must be more than 0 and at most {MAX_SUSPENSION_S}.",
            param="duration_s",
        )
    async with db.session.begin() as session:
        await _existing_key(session, api_key_id)
        row = await suspensions.suspend(
            session,
            api_key_id,
            reason="manual",
            until=tenancy.now() + timedelta(seconds=duration_s),
            created_by=actor.name,
            detail={"note": note} if note else {},
        )
        await audit.record(
            session,
            actor,
            "key.suspend",
            audit.Target("api_key", api_key_id),
            after=suspension_view(row.reason, row.until, row.detail),
        )
        return _view(row)


async def lift(db: Database, api_key_id: str, *, actor: audit.Actor) -> list[SuspensionView]:
    """End the key's suspensions in force; those lifted (none: nothing was in force)."""
    async with db.session.begin() as session:
        await _existing_key(session, api_key_id)
        rows = await suspensions.lift(session, api_key_id, lifted_by=actor.name)
        if rows:
            await audit.record(
                session,
                actor,
                "key.unsuspend",
                audit.Target("api_key", api_key_id),
                before={
                    "suspensions": [suspension_view(r.reason, r.until, r.detail) for r in rows]
                },
                after={"suspensions": []},
            )
        return [_view(r) for r in rows]


async def _existing_key(session: AsyncSession, key_id: str) -> None:
    if await tenancy.get_api_key(session, key_id) is None:
        raise NotFoundError(f"No API key with id {key_id!r}.", param="key_id")


def _view(row: KeySuspension) -> SuspensionView:
    return SuspensionView(
        row.id,
        row.api_key_id,
        row.reason,
        dict(row.detail),
        row.created_at,
        row.until,
        row.created_by,
        row.lifted_at,
        row.lifted_by,
    )
