"""Repository for batches and their lines: the queue the batch workers drain.

A line moves `pending -> running -> ok | failed`; a cancelled batch's unrun lines become
`skipped`, an expired batch's `expired`. Claiming sets `running`, the worker's id and a lease;
the result is written in the same transaction that marks the line done, guarded by the claim
(worker and attempt), so a worker that lost its claim cannot record a second result. A claim
is an `UPDATE ... RETURNING` of chosen lines. On PostgreSQL they are chosen first with
`SELECT ... FOR UPDATE SKIP LOCKED`, so workers never wait on each other's rows; on SQLite,
which has one writer at a time, the choice is a subquery of the UPDATE, so choosing and
claiming run as one statement under the write lock. On both, the update re-checks each
line's state: one line is never claimed by two workers.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Select, and_, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.storage.database import Database
from headrace.storage.encryption import ContentCipher
from headrace.storage.schema import BatchLineRow, BatchRow

CANCELLABLE = ("validating", "in_progress")
# Statuses whose batch still has lines to finish or files to write.
OPEN = ("in_progress", "cancelling", "finalizing")
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class StoredBatch:
    id: str
    project_id: str
    org_id: str
    api_key_id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str
    metadata_: dict[str, str] | None
    errors: list[dict[str, object]] | None
    model: str | None
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    expires_at: int
    in_progress_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    total: int
    completed: int
    failed: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    output_expires_after_s: int | None = None  # the output and error files' lifetime


@dataclass(frozen=True, slots=True)
class ClaimedLine:
    batch_id: str
    line: int
    custom_id: str
    body: str  # opened
    attempt: int


@dataclass(frozen=True, slots=True)
class LineResult:
    status: str  # ok | failed | expired
    result: str  # the output or error line, opened


class Batches:
    def __init__(self, db: Database, cipher: ContentCipher) -> None:
        self._db = db
        self._cipher = cipher
        self._postgres = db.engine.dialect.name == "postgresql"

    # The API's side.

    async def create(self, batch: StoredBatch) -> StoredBatch:
        async with self._db.session.begin() as session:
            session.add(BatchRow(**{f.name: getattr(batch, f.name) for f in fields(batch)}))
        return batch

    async def get(self, project_id: str, batch_id: str) -> StoredBatch | None:
        async with self._db.session() as session:
            row = await _batch(session, batch_id, project_id)
        return None if row is None else _stored(row)

    async def page(
        self, project_id: str, *, limit: int = 20, after: str | None = None
    ) -> tuple[list[StoredBatch], bool]:
        """A page of the project's batches, newest first, and whether more follow."""
        stmt = select(BatchRow).where(BatchRow.project_id == project_id)
        async with self._db.session() as session:
            cursor = None if after is None else await _batch(session, after, project_id)
            if cursor is not None:
                key = tuple_(BatchRow.created_at, BatchRow.id)
                stmt = stmt.where(key < tuple_(cursor.created_at, cursor.id))
            stmt = stmt.order_by(BatchRow.created_at.desc(), BatchRow.id.desc())
            rows = list(await session.scalars(stmt.limit(limit + 1)))
        return [_stored(r) for r in rows[:limit]], len(rows) > limit

    async def cancel(self, project_id: str, batch_id: str, now: int) -> StoredBatch | None:
        """Move a validating or running batch to `cancelling`; any other is left as it is."""
        async with self._db.session.begin() as session:
            await session.execute(
                update(BatchRow)
                .where(
                    BatchRow.id == batch_id,
                    BatchRow.project_id == project_id,
                    BatchRow.status.in_(CANCELLABLE),
                )
                .values(status="cancelling", cancelling_at=now)
            )
            row = await _batch(session, batch_id, project_id)
        return None if row is None else _stored(row)

    # The workers' side.

    async def by_id(self, batch_id: str) -> StoredBatch | None:
        """A batch whatever its project: for the workers, never for a caller."""
        async with self._db.session() as session:
            row = await session.get(BatchRow, batch_id)
        return None if row is None else _stored(row)

    async def any_open(self) -> bool:
        """Whether any batch has work left: what an idle worker's poll asks first."""
        async with self._db.session() as session:
            found = await session.scalar(
                select(BatchRow.id).where(BatchRow.status.in_(("validating", *OPEN))).limit(1)
            )
        return found is not None

    async def validating(self, limit: int = 10) -> list[StoredBatch]:
        async with self._db.session() as session:
            stmt = (
                select(BatchRow)
                .where(BatchRow.status == "validating")
                .order_by(BatchRow.created_at)
            )
            return [_stored(r) for r in await session.scalars(stmt.limit(limit))]

    async def start(
        self,
        batch_id: str,
        lines: AsyncIterable[tuple[str, str]],
        model: str | None,
        now: int,
    ) -> bool:
        """Store a validated batch's lines (custom id, body JSON) and move it to
        `in_progress`, in one transaction; False when it is no longer validating. `lines`
        are read as they come (a large file's): a page of rows is held at a time."""
        async with self._db.session.begin() as session:
            moved = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status == "validating")
                .values(status="in_progress", in_progress_at=now, model=model)
            )
            if _count(moved) != 1:
                return False
            total = 0
            page: list[dict[str, object]] = []
            async for custom_id, body in lines:
                page.append(
                    {
                        "batch_id": batch_id,
                        "line": total,
                        "custom_id": custom_id,
                        "body": self._cipher.seal(body),
                        "status": "pending",
                        "attempt": 0,
                    }
                )
                total += 1
                if len(page) == _PAGE:
                    await session.execute(insert(BatchLineRow), page)
                    page = []
            if page:
                await session.execute(insert(BatchLineRow), page)
            await session.execute(
                update(BatchRow).where(BatchRow.id == batch_id).values(total=total)
            )
        return True

    async def fail(self, batch_id: str, errors: list[dict[str, object]], now: int) -> bool:
        """A batch whose input did not validate: `failed`, with its errors."""
        async with self._db.session.begin() as session:
            moved = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status == "validating")
                .values(status="failed", failed_at=now, errors=errors)
            )
        return _count(moved) == 1

    async def claim(
        self, worker: str, limit: int, *, now_ms: int, lease_ms: int
    ) -> list[ClaimedLine]:
        """Claim up to `limit` lines of running batches, oldest batch first: pending ones,
        and running ones whose worker let the lease lapse (it died)."""
        claimable = or_(
            BatchLineRow.status == "pending",
            and_(BatchLineRow.status == "running", BatchLineRow.lease_until_ms < now_ms),
        )
        candidates: Select[str, int] = (
            select(BatchLineRow.batch_id, BatchLineRow.line)
            .join(BatchRow, BatchRow.id == BatchLineRow.batch_id)
            .where(BatchRow.status == "in_progress", claimable)
            .order_by(BatchRow.created_at, BatchLineRow.batch_id, BatchLineRow.line)
            .limit(limit)
        )
        async with self._db.session() as session:  # a read first: idle workers poll
            if await session.scalar(candidates.with_only_columns(BatchLineRow.line)) is None:
                return []
        async with self._db.session.begin() as session:
            chosen: Any = candidates
            if self._postgres:
                # Locked here, in a statement of its own: as a subquery of the UPDATE,
                # PostgreSQL may run it more than once and claim past the limit.
                locked = candidates.with_for_update(skip_locked=True, of=BatchLineRow)
                chosen = [tuple(k) for k in await session.execute(locked)]
            claimed = await session.execute(
                update(BatchLineRow)
                .where(tuple_(BatchLineRow.batch_id, BatchLineRow.line).in_(chosen), claimable)
                .values(
                    status="running",
                    claimed_by=worker,
                    lease_until_ms=now_ms + lease_ms,
                    attempt=BatchLineRow.attempt + 1,
                )
                .returning(
                    BatchLineRow.batch_id,
                    BatchLineRow.line,
                    BatchLineRow.custom_id,
                    BatchLineRow.body,
                    BatchLineRow.attempt,
                )
                .execution_options(synchronize_session=False)
            )
            rows = claimed.all()
        return sorted(
            (ClaimedLine(b, n, c, self._cipher.open(body), a) for b, n, c, body, a in rows),
            key=lambda c: (c.batch_id, c.line),
        )

    async def renew(self, worker: str, lines: Sequence[ClaimedLine], until_ms: int) -> None:
        """Extend the lease of lines this worker is still running."""
        if not lines:
            return
        keys = [(c.batch_id, c.line) for c in lines]
        async with self._db.session.begin() as session:
            await session.execute(
                update(BatchLineRow)
                .where(
                    tuple_(BatchLineRow.batch_id, BatchLineRow.line).in_(keys),
                    BatchLineRow.status == "running",
                    BatchLineRow.claimed_by == worker,
                )
                .values(lease_until_ms=until_ms)
            )

    async def finish(
        self,
        worker: str,
        claimed: ClaimedLine,
        *,
        ok: bool,
        result: str,
        tokens: tuple[int, int, int],
    ) -> bool:
        """Record a line's result and count it on its batch, in one transaction; False
        (nothing written) when this worker no longer holds the claim."""
        async with self._db.session.begin() as session:
            done = await session.execute(
                update(BatchLineRow)
                .where(
                    BatchLineRow.batch_id == claimed.batch_id,
                    BatchLineRow.line == claimed.line,
                    BatchLineRow.status == "running",
                    BatchLineRow.claimed_by == worker,
                    BatchLineRow.attempt == claimed.attempt,
                )
                .values(
                    status="ok" if ok else "failed",
                    result=self._cipher.seal(result),
                    claimed_by=None,
                    lease_until_ms=None,
                )
            )
            if _count(done) != 1:
                return False
            inp, cached, out = tokens
            await session.execute(
                update(BatchRow)
                .where(BatchRow.id == claimed.batch_id)
                .values(
                    completed=BatchRow.completed + int(ok),
                    failed=BatchRow.failed + int(not ok),
                    input_tokens=BatchRow.input_tokens + inp,
                    cached_tokens=BatchRow.cached_tokens + cached,
                    output_tokens=BatchRow.output_tokens + out,
                )
            )
        return True

    async def postpone(self, worker: str, claimed: ClaimedLine, until_ms: int) -> None:
        """Give a line back to be claimed again from `until_ms` on (it met a full limit):
        a lapsing lease with no holder is exactly a delayed retry."""
        async with self._db.session.begin() as session:
            await session.execute(
                update(BatchLineRow)
                .where(
                    BatchLineRow.batch_id == claimed.batch_id,
                    BatchLineRow.line == claimed.line,
                    BatchLineRow.status == "running",
                    BatchLineRow.claimed_by == worker,
                    BatchLineRow.attempt == claimed.attempt,
                )
                .values(claimed_by=None, lease_until_ms=until_ms)
            )

    async def release(self, worker: str) -> int:
        """Hand back the lines a previous run of `worker` held (it crashed): pending again
        now, rather than when their leases lapse. Call before claiming."""
        async with self._db.session.begin() as session:
            released = await session.execute(
                update(BatchLineRow)
                .where(BatchLineRow.status == "running", BatchLineRow.claimed_by == worker)
                .values(status="pending", claimed_by=None, lease_until_ms=None)
            )
        return _count(released)

    async def skip_unrun(self, now_ms: int) -> int:
        """Cancelling batches: their lines not started (or whose worker died) are skipped."""
        cancelling = select(BatchRow.id).where(BatchRow.status == "cancelling")
        async with self._db.session.begin() as session:
            # Read first: an UPDATE takes SQLite's one write lock even when it matches nothing,
            # and idle workers ask every poll.
            if await session.scalar(cancelling.limit(1)) is None:
                return 0
            skipped = await session.execute(
                update(BatchLineRow)
                .where(BatchLineRow.batch_id.in_(cancelling), _unrun(now_ms))
                .values(status="skipped", claimed_by=None, lease_until_ms=None)
            )
        return _count(skipped)

    async def expire_unrun(
        self, now: int, now_ms: int, result: Callable[[str, int, str], str]
    ) -> int:
        """Running batches past their window: each unrun line gets `result(batch id, line,
        custom id)` as its error line and counts as failed."""
        expired = 0
        async with self._db.session.begin() as session:
            late = select(BatchRow.id).where(
                BatchRow.status == "in_progress", BatchRow.expires_at <= now
            )
            rows = (
                await session.execute(
                    select(BatchLineRow.batch_id, BatchLineRow.line, BatchLineRow.custom_id)
                    .where(BatchLineRow.batch_id.in_(late), _unrun(now_ms))
                    .order_by(BatchLineRow.batch_id, BatchLineRow.line)
                )
            ).all()
            for batch_id, line, custom_id in rows:
                await session.execute(
                    update(BatchLineRow)
                    .where(BatchLineRow.batch_id == batch_id, BatchLineRow.line == line)
                    .values(
                        status="expired",
                        result=self._cipher.seal(result(batch_id, line, custom_id)),
                        claimed_by=None,
                        lease_until_ms=None,
                    )
                )
                await session.execute(
                    update(BatchRow)
                    .where(BatchRow.id == batch_id)
                    .values(failed=BatchRow.failed + 1)
                )
                expired += 1
        return expired

    async def settled(self) -> list[StoredBatch]:
        """Batches with every line ended: their files are to be written."""
        live = exists().where(
            BatchLineRow.batch_id == BatchRow.id,
            BatchLineRow.status.in_(("pending", "running")),
        )
        async with self._db.session() as session:
            rows = await session.scalars(
                select(BatchRow).where(BatchRow.status.in_(OPEN), ~live).order_by(BatchRow.id)
            )
            return [_stored(r) for r in rows]

    async def move(self, batch_id: str, source: str, target: str, **values: Any) -> bool:
        """`source` to `target` status (with `values`), unless another worker moved it."""
        async with self._db.session.begin() as session:
            moved = await session.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id, BatchRow.status == source)
                .values(status=target, **values)
            )
        return _count(moved) == 1

    async def has_expired_lines(self, batch_id: str) -> bool:
        async with self._db.session() as session:
            found = await session.scalar(
                select(func.count())
                .select_from(BatchLineRow)
                .where(BatchLineRow.batch_id == batch_id, BatchLineRow.status == "expired")
            )
        return bool(found)

    async def results(self, batch_id: str) -> AsyncIterator[LineResult]:
        """Every ended line's result, in input order, a page at a time."""
        after = -1
        while True:
            async with self._db.session() as session:
                page = (
                    await session.execute(
                        select(BatchLineRow.line, BatchLineRow.status, BatchLineRow.result)
                        .where(
                            BatchLineRow.batch_id == batch_id,
                            BatchLineRow.line > after,
                            BatchLineRow.status.in_(("ok", "failed", "expired")),
                        )
                        .order_by(BatchLineRow.line)
                        .limit(_PAGE)
                    )
                ).all()
            for line, status, result in page:
                yield LineResult(status, self._cipher.open(result or ""))
                after = line
            if len(page) < _PAGE:
                return


def _unrun(now_ms: int) -> Any:
    return or_(
        BatchLineRow.status == "pending",
        and_(BatchLineRow.status == "running", BatchLineRow.lease_until_ms < now_ms),
    )


def _count(result: Any) -> int:
    return int(result.rowcount)


async def _batch(session: AsyncSession, batch_id: str, project_id: str) -> BatchRow | None:
    return await session.scalar(
        select(BatchRow).where(BatchRow.id == batch_id, BatchRow.project_id == project_id)
    )


def _stored(row: BatchRow) -> StoredBatch:
    return StoredBatch(**{f.name: getattr(row, f.name) for f in fields(StoredBatch)})
