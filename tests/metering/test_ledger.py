"""The ledger writes each event once, on SQLite and PostgreSQL, through failures."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select

from headrace.metering.ledger import UsageLedger
from headrace.metering.usage import UsageEvent
from headrace.storage.database import Database
from headrace.storage.schema import UsageEventRow

EVENT = UsageEvent(
    "chatcmpl-a", 1_700_000_000, "org", "proj", "key", "m", 10, 0, 5, 12, 100, 200, "ok"
)


async def _count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(UsageEventRow)) or 0)


async def test_events_are_written_once_even_when_recorded_twice(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    ledger = UsageLedger(db)
    ledger.record(EVENT)
    ledger.record(replace(EVENT, request_id="chatcmpl-b"))
    await ledger.flush()
    ledger.record(EVENT)  # a retry of a write that had in fact committed
    await ledger.flush()
    assert await _count(db) == 2
    async with db.session() as session:
        row = await session.get(UsageEventRow, "chatcmpl-a")
    assert row is not None
    assert (row.input_tokens, row.output_tokens, row.status) == (10, 5, "ok")
    await db.close()


async def test_writer_task_and_close_write_everything(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    ledger = UsageLedger(db)
    ledger.start()
    for i in range(1200):  # more than one batch
        ledger.record(replace(EVENT, request_id=f"chatcmpl-{i}"))
    await ledger.close()
    assert ledger.pending == 0
    assert await _count(db) == 1200
    await db.close()


async def test_a_database_outage_keeps_events_queued_until_it_is_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'not-yet' / 'usage.db'}"
    db = Database(url)  # its directory does not exist: every write fails
    # After its failed write the writer waits out the retry delay: no write of its own races
    # the migration below (on a loaded machine one did, and the migration met a locked
    # database); `close` writes what is queued.
    ledger = UsageLedger(db, retry_s=60.0)
    ledger.start()
    ledger.record(EVENT)
    for _ in range(5):
        await asyncio.sleep(0)  # let the writer try and fail
    assert ledger.pending == 1
    (tmp_path / "not-yet").mkdir()
    await db.migrate()  # the database is back
    await ledger.close()
    assert ledger.pending == 0
    assert await _count(db) == 1
    await db.close()


async def _row(db: Database, request_id: str) -> UsageEventRow | None:
    async with db.session() as session:
        return await session.get(UsageEventRow, request_id)


async def test_a_started_row_is_committed_before_begin_returns(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    ledger = UsageLedger(db, replica="gw-1")
    ledger.start()
    started = replace(EVENT, status="started", output_tokens=0, output_cost_nanousd=0)
    assert await ledger.begin(started) is True
    row = await _row(db, EVENT.request_id)  # another connection sees it: committed
    assert row is not None
    assert (row.status, row.replica, row.input_tokens) == ("started", "gw-1", 10)
    ledger.record(EVENT)
    ledger.record(EVENT)  # the same ending seen twice
    await ledger.close()
    row = await _row(db, EVENT.request_id)
    assert row is not None
    assert (row.status, row.output_tokens, row.output_cost_nanousd) == ("ok", 5, 200)
    assert await _count(db) == 1
    await db.close()


async def test_a_begin_cancelled_by_its_client_neither_stalls_nor_loses_the_others(
    database_url: str,
) -> None:
    """The newest waiter hangs up before the group commit runs: the older waiter's row is
    still committed before its `begin` returns, and so is the cancelled one's."""
    db = Database(database_url)
    await db.migrate()
    ledger = UsageLedger(db, begin_timeout_s=30.0)
    started = replace(EVENT, status="started", output_tokens=0, output_cost_nanousd=0)
    first = asyncio.create_task(ledger.begin(replace(started, request_id="chatcmpl-1")))
    second = asyncio.create_task(ledger.begin(replace(started, request_id="chatcmpl-2")))
    await asyncio.sleep(0)  # both queued, the commit not yet run
    second.cancel()
    assert await first is True
    assert await _row(db, "chatcmpl-1") is not None
    assert await _row(db, "chatcmpl-2") is not None
    await ledger.close()
    await db.close()


async def test_a_begin_waits_at_most_its_timeout_and_its_row_is_still_written(
    database_url: str,
) -> None:
    """A stalled database: each `begin` gives up after `begin_timeout_s` (False), the ones
    queued later wait their own full timeout, and every row is written once it is back."""
    db = Database(database_url)
    await db.migrate()
    ledger = UsageLedger(db, begin_timeout_s=0.02)
    stalled = asyncio.Event()
    flush = ledger.flush

    async def stalled_flush() -> None:
        await stalled.wait()
        await flush()

    ledger.flush = stalled_flush  # type: ignore[method-assign]
    started = replace(EVENT, status="started", output_tokens=0, output_cost_nanousd=0)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    assert await ledger.begin(replace(started, request_id="chatcmpl-1")) is False
    first_waited = loop.time() - asked
    asked = loop.time()
    assert await ledger.begin(replace(started, request_id="chatcmpl-2")) is False
    assert loop.time() - asked >= 0.02  # each waits its own timeout
    assert first_waited >= 0.02
    assert ledger.pending == 2
    stalled.set()
    ledger.flush = flush  # type: ignore[method-assign]
    await ledger.close()
    assert await _row(db, "chatcmpl-1") is not None
    assert await _row(db, "chatcmpl-2") is not None
    await db.close()


async def test_a_request_ended_before_any_work_leaves_no_row(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    ledger = UsageLedger(db)
    await ledger.begin(replace(EVENT, status="started"))
    ledger.discard(EVENT.request_id)
    await ledger.flush()
    assert await _count(db) == 0
    await db.close()


async def test_recovery_closes_this_replicas_open_rows_and_stale_ones(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    now = 1_700_000_000.0
    crashed = UsageLedger(db, replica="gw-1", clock=lambda: now)
    other = UsageLedger(db, replica="gw-2", clock=lambda: now)
    for ledger, request_id, created in (
        (crashed, "mine", now),  # its gateway is starting again: closed
        (other, "running", now),  # another live replica's request: left alone
        (other, "stale", now - 901),  # older than any request runs: its replica is gone
    ):
        started = replace(EVENT, request_id=request_id, created_at=int(created), status="started")
        await ledger.begin(started)
    restarted = UsageLedger(db, replica="gw-1", stale_after_s=900, clock=lambda: now)
    assert await restarted.recover() == 2
    statuses = {r: (await _row(db, r)).status for r in ("mine", "running", "stale")}  # type: ignore[union-attr]
    assert statuses == {"mine": "cancelled", "running": "started", "stale": "cancelled"}
    # The crashed request's late ending (a retry, a slow write) does not count it again.
    restarted.record(replace(EVENT, request_id="mine", status="ok", output_tokens=99))
    other.record(replace(EVENT, request_id="running", status="ok"))
    await restarted.flush()
    await other.flush()
    mine, running = await _row(db, "mine"), await _row(db, "running")
    assert mine is not None
    assert running is not None
    assert (mine.status, mine.output_tokens) == ("cancelled", EVENT.output_tokens)
    assert running.status == "ok"
    assert await _count(db) == 3
    await db.close()


async def test_begin_does_not_wait_out_a_database_outage(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'not-yet' / 'usage.db'}")
    ledger = UsageLedger(db, retry_s=0.001)
    ledger.start()
    assert await ledger.begin(replace(EVENT, status="started")) is False
    ledger.record(EVENT)
    # The database appears whole: migrated elsewhere, then moved in (migrating it in place
    # would race the ledger's retries, which SQLite can answer "database is locked").
    staging = Database(f"sqlite+aiosqlite:///{tmp_path / 'staging.db'}")
    await staging.migrate()
    await staging.close()
    (tmp_path / "not-yet").mkdir()
    os.replace(tmp_path / "staging.db", tmp_path / "not-yet" / "usage.db")
    await ledger.close()
    row = await _row(db, EVENT.request_id)
    assert row is not None
    assert row.status == "ok"
    await db.close()
