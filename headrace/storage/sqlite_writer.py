"""Transactions on an SQLite file from a thread of their own: the usage ledger's group
commits, which sit on every request's path.

Through the async engine a commit is SQLAlchemy's connection checkout and transaction
machinery on the event loop, and a hop to aiosqlite's thread and back for each of BEGIN,
every statement and COMMIT: about 70 us of a proxied request's CPU went to the ledger
(docs/benchmarks.md). Here a commit is one hop: the statements run on this thread's own
`sqlite3` connection (which releases the GIL while SQLite works), and the loop hears back
once.

    writer = SqliteWriter.for_url(url)      # None: not an SQLite file (PostgreSQL, memory)
    await writer.run([(sql, rows), ...])    # executemany each, in one transaction
    await writer.close()
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import make_url

Statement = tuple[str, Sequence[tuple[Any, ...]]]  # SQL text, and its rows of parameters

# As the async engine's connections (storage/database.py).
_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL")
_BUSY_TIMEOUT_S = 30.0  # another connection writing: wait for it, as the engine does


class SqliteWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self._thread: ThreadPoolExecutor | None = None  # started at first use, ended by close
        self._conn: sqlite3.Connection | None = None  # opened on the thread, at first use

    @classmethod
    def for_url(cls, url: str) -> SqliteWriter | None:
        """A writer for `url`'s file; None for other databases and in-memory SQLite (a
        second connection would open a database of its own)."""
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        return cls(parsed.database)

    async def run(self, statements: Sequence[Statement]) -> None:
        """Execute each statement over its rows (an executemany) in one transaction:
        committed when this returns, rolled back if it raises."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        await asyncio.get_running_loop().run_in_executor(self._thread, self._apply, statements)

    async def close(self) -> None:
        """Close the connection and end the thread; a later `run` starts them again."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._close)
            thread.shutdown(wait=True)

    def _apply(self, statements: Sequence[Statement]) -> None:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")  # the write lock up front: no upgrade deadlock
            for sql, rows in statements:
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # A file that cannot be opened (its directory is gone) raises here, and the
            # next write tries again.
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
