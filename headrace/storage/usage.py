"""Repository for usage events: written once, read as time buckets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.schema import UsageEventRow

GroupField = Literal["project_id", "api_key_id", "model"]


async def insert_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert events; one whose `request_id` is already stored is skipped, so a write
    retried after a lost acknowledgement never counts a request twice."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(UsageEventRow).values(list(rows))
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["request_id"]))


@dataclass(frozen=True, slots=True)
class UsageTotals:
    bucket: int  # index of the bucket from `start`
    group: dict[str, str]
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    requests: int
    input_cost_nanousd: int
    output_cost_nanousd: int


async def totals(
    session: AsyncSession,
    *,
    start: int,
    end: int,
    width_s: int,
    group_by: Sequence[GroupField] = (),
    project_ids: Sequence[str] = (),
    api_key_ids: Sequence[str] = (),
    models: Sequence[str] = (),
) -> list[UsageTotals]:
    """Sums per bucket of `width_s` seconds from `start` (inclusive) to `end` (exclusive)."""
    e = UsageEventRow
    bucket = ((e.created_at - start) // width_s).label("bucket")
    groups = [getattr(e, g) for g in group_by]
    where: list[ColumnElement[bool]] = [e.created_at >= start, e.created_at < end]
    if project_ids:
        where.append(e.project_id.in_(project_ids))
    if api_key_ids:
        where.append(e.api_key_id.in_(api_key_ids))
    if models:
        where.append(e.model.in_(models))
    stmt = (
        select(
            bucket,
            *groups,
            func.sum(e.input_tokens),
            func.sum(e.cached_tokens),
            func.sum(e.output_tokens),
            func.count(),
            func.sum(e.input_cost_nanousd),
            func.sum(e.output_cost_nanousd),
        )
        .where(*where)
        .group_by(bucket, *groups)
        .order_by(bucket, *groups)
    )
    out = []
    for row in await session.execute(stmt):
        n = len(groups)
        values = [int(v) for v in row[1 + n :]]
        out.append(
            UsageTotals(
                int(row[0]),
                {g: str(v) for g, v in zip(group_by, row[1 : 1 + n], strict=True)},
                *values,
            )
        )
    return out
