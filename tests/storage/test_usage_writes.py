"""The usage ledger's group-commit statements: rows packed several to a statement (the
SQLite writer's form) leave the table exactly as one statement per row does."""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, fields, replace
from pathlib import Path

import pytest

from headrace.metering.usage import UsageEvent
from headrace.storage.database import Database
from headrace.storage.usage import ledger_writes

COLUMNS = (*(f.name for f in fields(UsageEvent)), "replica")
STARTED = UsageEvent("r0", 1_700_000_000, "org", "proj", "key", "m", 10, 0, 0, 0, 100, 0, "started")


def _row(event: UsageEvent) -> tuple[object, ...]:
    return (*astuple(event), "gw-1")


def _commit(path: Path, per_statement: int) -> list[tuple[object, ...]]:
    """Five requests begin; three end (one twice, the first ending counting), one of them
    begun again in a retried write; one is discarded. The table afterwards."""
    started = [_row(replace(STARTED, request_id=f"r{i}")) for i in range(5)]
    ended = [
        _row(replace(STARTED, request_id=rid, status="ok", output_tokens=n))
        for rid, n in (("r1", 7), ("r2", 3), ("r1", 99), ("r4", 1))
    ]
    statements = [
        *ledger_writes("qmark", COLUMNS, started, [], [], rows_per_statement=per_statement),
        *ledger_writes(
            "qmark", COLUMNS, started[:2], ended, ["r3"], rows_per_statement=per_statement
        ),
    ]
    with sqlite3.connect(path) as conn:
        for sql, rows in statements:
            conn.executemany(sql, rows)
        return conn.execute(
            "SELECT request_id, status, output_tokens, replica FROM usage_events"
            " ORDER BY request_id"
        ).fetchall()


@pytest.mark.parametrize("per_statement", [2, 3, 500])
async def test_packed_rows_write_what_a_row_per_statement_writes(
    tmp_path: Path, per_statement: int
) -> None:
    tables = []
    for packing in (1, per_statement):
        db = Database(f"sqlite+aiosqlite:///{tmp_path / f'{packing}.db'}")
        await db.migrate()
        await db.close()
        tables.append(_commit(tmp_path / f"{packing}.db", packing))
    assert (
        tables[0]
        == tables[1]
        == [
            ("r0", "started", 0, "gw-1"),
            ("r1", "ok", 7, "gw-1"),
            ("r2", "ok", 3, "gw-1"),
            ("r4", "ok", 1, "gw-1"),
        ]
    )


def test_packed_statements_hold_at_most_their_rows_each() -> None:
    started = [_row(replace(STARTED, request_id=f"r{i}")) for i in range(5)]
    statements = ledger_writes("qmark", COLUMNS, started, [], [], rows_per_statement=2)
    assert [len(params) for _, [params] in statements] == [2 * len(COLUMNS)] * 2 + [len(COLUMNS)]
    assert [sql.count("(?") for sql, _ in statements] == [2, 2, 1]
    with pytest.raises(ValueError, match="qmark"):  # asyncpg's $n would need renumbering
        ledger_writes("numeric_dollar", COLUMNS, started, [], [], rows_per_statement=2)
