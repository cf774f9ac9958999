"""The ledger writes each event once, on SQLite and PostgreSQL, through failures."""

from __future__ import annotations

import asyncio
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
    ledger = UsageLedger(db, retry_s=0.001)
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
