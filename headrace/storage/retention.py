"""Per-project retention of stored content, and the purge that enforces it.

A project without a row keeps content until it is deleted; `days = 0` stores none at all
(the API does not write it); otherwise `purge` deletes what is older than `days`: items and
responses by their creation, conversations by their last activity.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, select

from headrace.storage.database import Database
from headrace.storage.schema import (
    ConversationItemRow,
    ConversationRow,
    ResponseItemRow,
    ResponseRow,
    RetentionRow,
)

DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Purged:
    conversations: int = 0
    items: int = 0
    responses: int = 0


async def set_retention(db: Database, project_id: str, days: int | None, now: int) -> None:
    """Set a project's retention in days; None removes it (keep until deleted)."""
    async with db.session.begin() as session:
        row = await session.get(RetentionRow, project_id)
        if days is None:
            if row is not None:
                await session.delete(row)
        elif row is None:
            session.add(RetentionRow(project_id=project_id, days=days, updated_at=now))
        else:
            row.days, row.updated_at = days, now


async def get_retention(db: Database, project_id: str) -> int | None:
    async with db.session() as session:
        return await session.scalar(
            select(RetentionRow.days).where(RetentionRow.project_id == project_id)
        )


async def purge(db: Database, now: int) -> Purged:
    """Delete every project's content older than its retention; one transaction each."""
    async with db.session() as session:
        policies = (await session.execute(select(RetentionRow.project_id, RetentionRow.days))).all()
    total = Purged()
    for project_id, days in policies:
        done = await _purge_project(db, project_id, now - days * DAY_S)
        total = Purged(
            total.conversations + done.conversations,
            total.items + done.items,
            total.responses + done.responses,
        )
    return total


async def _purge_project(db: Database, project_id: str, cutoff: int) -> Purged:
    conv, item, resp = ConversationRow, ConversationItemRow, ResponseRow
    stale: ColumnElement[bool] = (conv.project_id == project_id) & (conv.updated_at < cutoff)
    async with db.session.begin() as session:
        stale_ids = select(conv.id).where(stale)
        items = await session.execute(
            delete(item).where(
                item.project_id == project_id,
                (item.created_at < cutoff) | item.conversation_id.in_(stale_ids),
            )
        )
        conversations = await session.execute(delete(conv).where(stale))
        old = select(resp.id).where(resp.project_id == project_id, resp.created_at < cutoff)
        await session.execute(delete(ResponseItemRow).where(ResponseItemRow.response_id.in_(old)))
        responses = await session.execute(
            delete(resp).where(resp.project_id == project_id, resp.created_at < cutoff)
        )
    return Purged(
        int(conversations.rowcount),  # type: ignore[attr-defined]
        int(items.rowcount),  # type: ignore[attr-defined]
        int(responses.rowcount),  # type: ignore[attr-defined]
    )
