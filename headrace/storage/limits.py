"""Repository for rate limits per org, project and key, for all models or one."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.schema import LimitRow
from headrace.storage.tenancy import now


async def get_limits(session: AsyncSession, scopes: Sequence[tuple[str, str]]) -> list[LimitRow]:
    """Every row (all-models and per-model) of the given `(scope, scope_id)` pairs, in
    one query."""
    if not scopes:
        return []
    rows = await session.scalars(
        select(LimitRow)
        .where(or_(*(and_(LimitRow.scope == s, LimitRow.scope_id == i) for s, i in scopes)))
        .order_by(LimitRow.scope, LimitRow.scope_id, LimitRow.model)
    )
    return list(rows)


async def set_limits(
    session: AsyncSession,
    scope: str,
    scope_id: str,
    *,
    model: str = "",
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    max_concurrent_requests: int | None,
    tokens_per_day: int | None,
    spend_per_day_usd: float | None = None,
    spend_per_month_usd: float | None = None,
) -> LimitRow | None:
    """Replace a scope's limits for `model` ("": all models); all None removes them."""
    row = await session.get(LimitRow, (scope, scope_id, model))
    values = (
        requests_per_minute,
        tokens_per_minute,
        max_concurrent_requests,
        tokens_per_day,
        spend_per_day_usd,
        spend_per_month_usd,
    )
    if all(v is None for v in values):
        if row is not None:
            await session.execute(
                delete(LimitRow).where(
                    LimitRow.scope == scope, LimitRow.scope_id == scope_id, LimitRow.model == model
                )
            )
        return None
    if row is None:
        row = LimitRow(scope=scope, scope_id=scope_id, model=model)
        session.add(row)
    row.requests_per_minute = requests_per_minute
    row.tokens_per_minute = tokens_per_minute
    row.max_concurrent_requests = max_concurrent_requests
    row.tokens_per_day = tokens_per_day
    row.spend_per_day_usd = spend_per_day_usd
    row.spend_per_month_usd = spend_per_month_usd
    row.updated_at = now()
    await session.flush()
    return row
