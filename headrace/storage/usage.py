"""Repository for usage events: written once, read as time buckets."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from headrace.storage.schema import UsageEventRow
from headrace.storage.sqlite_writer import Statement

GroupField = Literal["project_id", "api_key_id", "model"]


# The writes take a Core connection and pass rows as parameters (an executemany). They sit
# on every request's path (the ledger's group commits), so their SQL is written out once
# per column set and driver: building the upsert as a Core construct on every write
# (column proxies, `excluded`, cache keys) cost a fifth of a proxied request's CPU under
# cProfile, and binding named parameters row by row another few per cent. The same SQL
# runs on SQLite and PostgreSQL (`ON CONFLICT ... DO NOTHING / DO UPDATE ... WHERE`).
_TABLE = UsageEventRow.__tablename__
_COLUMNS = frozenset(UsageEventRow.__table__.columns.keys())


def _placeholders(paramstyle: str, count: int) -> str:
    if paramstyle == "qmark":  # sqlite3 / aiosqlite
        return ", ".join("?" * count)
    if paramstyle == "numeric_dollar":  # asyncpg
        return ", ".join(f"${i}" for i in range(1, count + 1))
    if paramstyle in ("format", "pyformat"):  # psycopg
        return ", ".join(["%s"] * count)
    raise ValueError(f"unsupported DB-API paramstyle {paramstyle!r}")


#: Parameters SQLite binds in one statement at most (its default limit since 3.32).
SQLITE_MAX_PARAMS = 32_766


@functools.cache
def _upsert_sql(paramstyle: str, columns: tuple[str, ...], update: bool) -> tuple[str, str]:
    """The upsert's text before its VALUES rows and after them."""
    unknown = set(columns) - _COLUMNS
    if unknown:  # the names go into SQL text: only the table's own
        raise ValueError(f"not columns of {_TABLE}: {sorted(unknown)}")
    head = f"INSERT INTO {_TABLE} ({', '.join(columns)}) VALUES "
    if not update:
        return head, " ON CONFLICT (request_id) DO NOTHING"
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "request_id")
    return head, (
        f" ON CONFLICT (request_id) DO UPDATE SET {updates} WHERE {_TABLE}.status = 'started'"
    )


def _upsert(
    paramstyle: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    *,
    update: bool,
    per_statement: int,
) -> list[Statement]:
    head, tail = _upsert_sql(paramstyle, columns, update)
    values = f"({_placeholders(paramstyle, len(columns))})"
    if per_statement == 1:
        return [(head + values + tail, rows)]
    if paramstyle != "qmark":  # numbered placeholders would need numbering across rows
        raise ValueError(f"rows packed into one statement need qmark, not {paramstyle!r}")
    return [
        (head + ", ".join([values] * len(chunk)) + tail, [tuple(chain.from_iterable(chunk))])
        for chunk in (rows[i : i + per_statement] for i in range(0, len(rows), per_statement))
    ]


def ledger_writes(
    paramstyle: str,
    columns: tuple[str, ...],
    started: Sequence[tuple[Any, ...]],
    ended: Sequence[tuple[Any, ...]],
    discarded: Sequence[str],
    *,
    rows_per_statement: int = 1,
) -> list[Statement]:
    """One group commit of the usage ledger, as executemany statements for a driver of
    `paramstyle`; rows are tuples of `columns`' values (`request_id` among them), in this
    order:

    - `started` rows inserted; one whose `request_id` is already stored is skipped, so a
      write retried after a lost acknowledgement never counts a request twice;
    - `ended` rows written over their `started` rows (or as new rows). A row already
      finished is left as it is: a retried write, or a request whose started row was
      closed as orphaned, counts once, as first written;
    - the started rows of `discarded` requests (ended before any work) removed.

    With `rows_per_statement` above 1 (qmark drivers only: SQLite) the rows go up to that
    many to a statement (`VALUES (...), (...)`), each statement one set of parameters.
    """
    statements: list[Statement] = []
    if started:
        statements += _upsert(
            paramstyle, columns, started, update=False, per_statement=rows_per_statement
        )
    if ended:
        # One row per request: PostgreSQL refuses to update a row twice in one statement,
        # and the first ending written is the one that counts anyway.
        key = columns.index("request_id")
        first = list({r[key]: r for r in reversed(ended)}.values())
        statements += _upsert(
            paramstyle, columns, first, update=True, per_statement=rows_per_statement
        )
    if discarded:
        sql = (
            f"DELETE FROM {_TABLE} WHERE request_id = {_placeholders(paramstyle, 1)} "
            "AND status = 'started'"
        )
        statements.append((sql, [(request_id,) for request_id in discarded]))
    return statements


async def write(conn: AsyncConnection, statements: Sequence[Statement]) -> None:
    """Run `ledger_writes`' statements on `conn`, inside its transaction."""
    for sql, rows in statements:
        await conn.exec_driver_sql(sql, rows)


async def close_orphans(session: AsyncSession, *, replica: str | None, before: int) -> int:
    """Close as `cancelled` the started rows whose gateway is gone: those `replica` wrote
    (it is starting again) and those created before `before` (older than any request may
    run). They keep what was known when they started: input tokens and their cost."""
    e = UsageEventRow
    whose = (
        e.created_at < before
        if replica is None
        else or_(e.replica == replica, e.created_at < before)
    )
    result = await session.execute(
        update(e).where(e.status == "started", whose).values(status="cancelled")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


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
    endpoints: Sequence[str] = (),
) -> list[UsageTotals]:
    """Sums per bucket of `width_s` seconds from `start` (inclusive) to `end` (exclusive),
    of the `endpoints` given (all when empty)."""
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
    if endpoints:
        where.append(e.endpoint.in_(endpoints))
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


async def spend(
    session: AsyncSession,
    *,
    org_id: str,
    project_id: str,
    api_key_id: str,
    day_start: int,
    month_start: int,
) -> dict[tuple[str, str], int]:
    """Nano-USD spent by a key, its project and its org since `day_start` and since
    `month_start`, keyed `("key" | "project" | "org", "day" | "month")`, in one query."""
    e = UsageEventRow
    cost = e.input_cost_nanousd + e.output_cost_nanousd
    scopes = {"key": e.api_key_id == api_key_id, "project": e.project_id == project_id}
    columns: list[tuple[str, str]] = []
    sums = []
    for scope in ("key", "project", "org"):
        for period, since in (("day", day_start), ("month", month_start)):
            cond = e.created_at >= since
            if scope in scopes:
                cond = cond & scopes[scope]
            columns.append((scope, period))
            sums.append(func.coalesce(func.sum(case((cond, cost), else_=0)), 0))
    stmt = select(*sums).where(e.org_id == org_id, e.created_at >= min(day_start, month_start))
    row = (await session.execute(stmt)).one()
    return {c: int(v) for c, v in zip(columns, row, strict=True)}
