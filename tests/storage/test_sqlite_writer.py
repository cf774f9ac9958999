"""The ledger's SQLite writer: one transaction per run, on a thread of its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from headrace.storage.sqlite_writer import SqliteWriter

CREATE = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"
INSERT = "INSERT INTO t (id, v) VALUES (?, ?)"


def _rows(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT id, v FROM t").fetchall())


def test_only_sqlite_files_get_a_writer(tmp_path: Path) -> None:
    writer = SqliteWriter.for_url(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    assert writer is not None
    assert writer.path == str(tmp_path / "a.db")
    assert SqliteWriter.for_url("sqlite+aiosqlite://") is None
    assert SqliteWriter.for_url("sqlite+aiosqlite:///:memory:") is None
    assert SqliteWriter.for_url("postgresql+asyncpg://u:p@127.0.0.1/db") is None


async def test_a_run_commits_every_statement_or_none(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with sqlite3.connect(path) as conn:
        conn.execute(CREATE)
    writer = SqliteWriter(str(path))
    await writer.run([(INSERT, [(1, "a"), (2, "b")]), (INSERT, [(3, "c")])])
    assert _rows(path) == [(1, "a"), (2, "b"), (3, "c")]
    with pytest.raises(sqlite3.IntegrityError):  # the second statement repeats id 3
        await writer.run([(INSERT, [(4, "d")]), (INSERT, [(3, "again")])])
    assert _rows(path) == [(1, "a"), (2, "b"), (3, "c")]  # row 4 rolled back with it
    await writer.run([(INSERT, [(4, "d")])])  # the connection is usable after a failure
    assert _rows(path)[-1] == (4, "d")
    await writer.close()
    await writer.run([(INSERT, [(5, "e")])])  # closed: a later run opens it again
    assert len(_rows(path)) == 5
    await writer.close()


async def test_a_file_that_cannot_be_opened_fails_each_run_until_it_can(tmp_path: Path) -> None:
    path = tmp_path / "not-yet" / "a.db"
    writer = SqliteWriter(str(path))
    with pytest.raises(sqlite3.OperationalError):
        await writer.run([(INSERT, [(1, "a")])])
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute(CREATE)
    await writer.run([(INSERT, [(1, "a")])])
    assert _rows(path) == [(1, "a")]
    await writer.close()
