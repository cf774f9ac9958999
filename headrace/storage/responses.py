"""Repository for stored responses and their items, every query scoped by project.

A response row holds its wire object (sealed JSON); its input and output items are rows of
`response_items` in order, so a `previous_response_id` chain is rebuilt from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, select

from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher
from headrace.storage.schema import ResponseItemRow, ResponseRow

Order = Literal["asc", "desc"]
MAX_CHAIN = 1000  # previous_response_id links followed at most: a guard, not a policy


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    previous_response_id: str | None
    conversation_id: str | None
    status: str
    body: dict[str, Any]  # the Response wire object
    created_at: int


@dataclass(frozen=True, slots=True)
class ItemPage:
    items: list[dict[str, Any]]
    has_more: bool


class Responses:
    def __init__(self, db: Database, cipher: ContentCipher) -> None:
        self._db = db
        self._cipher = cipher

    async def save(
        self,
        project_id: str,
        response: StoredResponse,
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
    ) -> None:
        async with self._db.session.begin() as session:
            session.add(
                ResponseRow(
                    id=response.id,
                    project_id=project_id,
                    previous_response_id=response.previous_response_id,
                    conversation_id=response.conversation_id,
                    status=response.status,
                    body=self._cipher.seal(json.dumps(response.body)),
                    created_at=response.created_at,
                )
            )
            await session.flush()
            session.add_all(
                ResponseItemRow(
                    id=it["id"],
                    response_id=response.id,
                    role=role,
                    content=self._cipher.seal(json.dumps(it)),
                )
                for role, items in (("input", inputs), ("output", outputs))
                for it in items
            )

    async def get(self, project_id: str, response_id: str) -> StoredResponse | None:
        async with self._db.session() as session:
            row = await session.scalar(
                select(ResponseRow).where(
                    ResponseRow.id == response_id, ResponseRow.project_id == project_id
                )
            )
        if row is None:
            return None
        return StoredResponse(
            row.id,
            row.previous_response_id,
            row.conversation_id,
            row.status,
            json.loads(self._cipher.open(row.body)),
            row.created_at,
        )

    async def delete(self, project_id: str, response_id: str) -> bool:
        async with self._db.session.begin() as session:
            owned = select(ResponseRow.id).where(
                ResponseRow.id == response_id, ResponseRow.project_id == project_id
            )
            await session.execute(
                delete(ResponseItemRow).where(ResponseItemRow.response_id.in_(owned))
            )
            result = await session.execute(
                delete(ResponseRow).where(
                    ResponseRow.id == response_id, ResponseRow.project_id == project_id
                )
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def input_items(
        self,
        project_id: str,
        response_id: str,
        *,
        after: str | None = None,
        limit: int = 20,
        order: Order = "desc",
    ) -> ItemPage | None:
        """A page of the response's input items; None if there is no such response, or
        `after` is not one of its input items."""
        item = ResponseItemRow
        async with self._db.session() as session:
            owner = await session.scalar(
                select(ResponseRow.id).where(
                    ResponseRow.id == response_id, ResponseRow.project_id == project_id
                )
            )
            if owner is None:
                return None
            stmt = select(item.content).where(item.response_id == response_id, item.role == "input")
            if after is not None:
                cursor = await session.scalar(
                    select(item.seq).where(
                        item.response_id == response_id, item.role == "input", item.id == after
                    )
                )
                if cursor is None:
                    return None
                stmt = stmt.where(item.seq > cursor if order == "asc" else item.seq < cursor)
            key = item.seq.asc() if order == "asc" else item.seq.desc()
            rows = (await session.scalars(stmt.order_by(key).limit(limit + 1))).all()
        return ItemPage([self._open(c) for c in rows[:limit]], has_more=len(rows) > limit)

    async def chain(self, project_id: str, response_id: str) -> list[dict[str, Any]] | None:
        """The items a follow-up of `response_id` continues from: the inputs and outputs of
        it and of every response before it, oldest first; None if it is not in the project."""
        ids: list[str] = []
        current: str | None = response_id
        async with self._db.session() as session:
            while current is not None and len(ids) < MAX_CHAIN:
                previous = await session.execute(
                    select(ResponseRow.previous_response_id).where(
                        ResponseRow.id == current, ResponseRow.project_id == project_id
                    )
                )
                row = previous.first()
                if row is None:
                    if not ids:
                        return None
                    break  # an earlier link was deleted or purged: history starts here
                ids.append(current)
                current = row[0]
            ids.reverse()
            order = {rid: i for i, rid in enumerate(ids)}
            rows = (
                await session.execute(
                    select(ResponseItemRow.response_id, ResponseItemRow.content)
                    .where(ResponseItemRow.response_id.in_(ids))
                    .order_by(ResponseItemRow.seq)
                )
            ).all()
        rows = sorted(rows, key=lambda r: order[r[0]])  # stable: keeps seq order within one
        return [self._open(content) for _, content in rows]

    def _open(self, content: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self._cipher.open(content))
        return value
