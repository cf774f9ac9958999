"""Repository for conversations and their items, every query scoped by project.

Item content is stored as its JSON, sealed by the `ContentCipher`; `seq` (an autoincrement
key) orders a conversation's items, so listing after a cursor is one index range scan on
`(conversation_id, seq)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher
from headrace.storage.schema import ConversationItemRow, ConversationRow

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class StoredConversation:
    id: str
    metadata: dict[str, str]
    created_at: int


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    has_more: bool


class Conversations:
    def __init__(self, db: Database, cipher: ContentCipher) -> None:
        self._db = db
        self._cipher = cipher

    async def create(
        self,
        project_id: str,
        conversation_id: str,
        metadata: dict[str, str],
        items: list[dict[str, Any]],
        now: int,
    ) -> StoredConversation:
        async with self._db.session.begin() as session:
            session.add(
                ConversationRow(
                    id=conversation_id,
                    project_id=project_id,
                    metadata_=metadata,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
            self._add(session, project_id, conversation_id, items, now)
        return StoredConversation(conversation_id, metadata, now)

    async def get(self, project_id: str, conversation_id: str) -> StoredConversation | None:
        async with self._db.session() as session:
            row = await _conversation(session, project_id, conversation_id)
        return None if row is None else StoredConversation(row.id, row.metadata_, row.created_at)

    async def update_metadata(
        self, project_id: str, conversation_id: str, metadata: dict[str, str]
    ) -> StoredConversation | None:
        async with self._db.session.begin() as session:
            row = await _conversation(session, project_id, conversation_id)
            if row is None:
                return None
            row.metadata_ = metadata
        return StoredConversation(row.id, metadata, row.created_at)

    async def delete(self, project_id: str, conversation_id: str) -> bool:
        """Delete the conversation and every item of it."""
        async with self._db.session.begin() as session:
            if await _conversation(session, project_id, conversation_id) is None:
                return False
            await session.execute(
                delete(ConversationItemRow).where(
                    ConversationItemRow.conversation_id == conversation_id,
                    ConversationItemRow.project_id == project_id,
                )
            )
            await session.execute(
                delete(ConversationRow).where(
                    ConversationRow.id == conversation_id, ConversationRow.project_id == project_id
                )
            )
        return True

    async def add_items(
        self, project_id: str, conversation_id: str, items: list[dict[str, Any]], now: int
    ) -> bool:
        """Append `items` (each with its `id` and `type`); False if there is no such
        conversation in the project."""
        async with self._db.session.begin() as session:
            found = await session.execute(
                update(ConversationRow)
                .where(
                    ConversationRow.id == conversation_id, ConversationRow.project_id == project_id
                )
                .values(updated_at=now)
            )
            if not found.rowcount:  # type: ignore[attr-defined]
                return False
            self._add(session, project_id, conversation_id, items, now)
        return True

    async def list_items(
        self,
        project_id: str,
        conversation_id: str,
        *,
        after: str | None = None,
        limit: int = 20,
        order: Order = "desc",
    ) -> Page | None:
        """A page of items after the item `after` (exclusive) in `order`; None if there is
        no such conversation, or `after` is not one of its items."""
        item = ConversationItemRow
        async with self._db.session() as session:
            if await _conversation(session, project_id, conversation_id) is None:
                return None
            stmt = select(item.content).where(
                item.conversation_id == conversation_id, item.project_id == project_id
            )
            if after is not None:
                cursor = await session.scalar(
                    select(item.seq).where(
                        item.id == after,
                        item.conversation_id == conversation_id,
                        item.project_id == project_id,
                    )
                )
                if cursor is None:
                    return None
                stmt = stmt.where(item.seq > cursor if order == "asc" else item.seq < cursor)
            key = item.seq.asc() if order == "asc" else item.seq.desc()
            rows = (await session.scalars(stmt.order_by(key).limit(limit + 1))).all()
        return Page([self._open(c) for c in rows[:limit]], has_more=len(rows) > limit)

    async def history(self, project_id: str, conversation_id: str) -> list[dict[str, Any]] | None:
        """Every item of the conversation, oldest first."""
        item = ConversationItemRow
        async with self._db.session() as session:
            if await _conversation(session, project_id, conversation_id) is None:
                return None
            rows = await session.scalars(
                select(item.content)
                .where(item.conversation_id == conversation_id, item.project_id == project_id)
                .order_by(item.seq)
            )
            return [self._open(c) for c in rows]

    async def get_item(
        self, project_id: str, conversation_id: str, item_id: str
    ) -> dict[str, Any] | None:
        item = ConversationItemRow
        async with self._db.session() as session:
            content = await session.scalar(
                select(item.content).where(
                    item.id == item_id,
                    item.conversation_id == conversation_id,
                    item.project_id == project_id,
                )
            )
        return None if content is None else self._open(content)

    async def delete_item(self, project_id: str, conversation_id: str, item_id: str) -> bool:
        item = ConversationItemRow
        async with self._db.session.begin() as session:
            result = await session.execute(
                delete(item).where(
                    item.id == item_id,
                    item.conversation_id == conversation_id,
                    item.project_id == project_id,
                )
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _add(
        self,
        session: AsyncSession,
        project_id: str,
        conversation_id: str,
        items: list[dict[str, Any]],
        now: int,
    ) -> None:
        session.add_all(
            ConversationItemRow(
                id=it["id"],
                conversation_id=conversation_id,
                project_id=project_id,
                type=it["type"],
                content=self._cipher.seal(json.dumps(it)),
                created_at=now,
            )
            for it in items
        )

    def _open(self, content: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self._cipher.open(content))
        return value


async def _conversation(
    session: AsyncSession, project_id: str, conversation_id: str
) -> ConversationRow | None:
    return await session.scalar(
        select(ConversationRow).where(
            ConversationRow.id == conversation_id, ConversationRow.project_id == project_id
        )
    )
