"""The usage ledger: every request's event, in the database exactly once, even across a crash.

An outbox in the usage table itself:

    await ledger.begin(event)   # admitted: a `started` row, committed before the work starts
    ledger.record(event)        # ended: the row becomes ok / error / cancelled
    ledger.discard(request_id)  # ended before any work (a stream dropped at once): no row

`begin` waits for its commit, so a gateway killed at any moment has a row for every request
that did work. `recover`, at start-up, closes the rows its previous run left `started` as
`cancelled` (input tokens and their cost, what was known when they began); a sweep closes
other replicas' rows older than any request may run (`stale_after_s`), for replicas that
never come back.

Writes are group commits: whoever writes (the writer task, or a `begin` that finds no write
in progress) commits everything queued in one transaction, so a burst of requests costs a
few transactions, not one each. `record` and `discard` never
await (they run in a request's `finally`, possibly while it is cancelled). A failed write
is retried with backoff and stays queued. Every write is keyed by the request id and only
ever moves a row out of `started`, so a retried batch, or the end of a request whose row
was already closed, never counts it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any

from headrace.metering.usage import UsageEvent
from headrace.observability.logging import get_logger
from headrace.storage import replicas
from headrace.storage import usage as usage_rows
from headrace.storage.database import Database
from headrace.storage.sqlite_writer import SqliteWriter

log = get_logger("headrace.metering")
_EVENT_FIELDS = tuple(f.name for f in fields(UsageEvent))
# A usage row's columns: the event's fields, then the replica that wrote it. Rows are plain
# tuples in this order, read off the event in one C call (a dict per row, then a tuple of
# its values, was a tenth of the ledger's share of a proxied request).
_COLUMNS = (*_EVENT_FIELDS, "replica")
_event_values = attrgetter(*_EVENT_FIELDS)
BATCH = 500
# Beyond this many unwritten events (a long database outage) the oldest are dropped, loudly,
# rather than the process running out of memory.
MAX_QUEUED = 200_000
# How often the writer closes other replicas' stale started rows.
SWEEP_S = 60.0
# How often this process renews its hold on its replica id, and when a hold not renewed
# lapses (another process may then take the id).
HEARTBEAT_S = 5.0
HOLD_LAPSES_S = 20.0


class ReplicaInUseError(RuntimeError):
    """Another live gateway holds this replica id: starting would let each close the
    other's in-flight usage rows."""


class UsageLedger:
    def __init__(
        self,
        db: Database,
        *,
        replica: str | None = None,
        stale_after_s: float = 900.0,
        retry_s: float = 0.5,
        max_retry_s: float = 30.0,
        begin_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        # SQLite: group commits on a thread of their own (storage/sqlite_writer.py).
        self._writer = SqliteWriter.for_url(db.url)
        self._paramstyle = "qmark" if self._writer is not None else db.engine.dialect.paramstyle
        # On the writer's thread a row per statement is a round of the GIL per row (SQLite
        # lets it go while it works on each): the rows of a commit go into one statement
        # (docs/benchmarks.md, "Fifth round").
        self._rows_per_statement = (
            usage_rows.SQLITE_MAX_PARAMS // len(_COLUMNS) if self._writer is not None else 1
        )
        self.replica = replica
        self._stale_after = stale_after_s
        # Started rows to write: each with its request's future and when it stops waiting.
        self._begun: deque[tuple[UsageEvent, asyncio.Future[bool], float]] = deque()
        self._overdue: asyncio.TimerHandle | None = None  # `_give_up_waiting`, when armed
        self._queue: deque[UsageEvent] = deque()
        self._discarded: deque[str] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one writer at a time: the task, or a `begin`
        self._failed_until = 0.0  # after a failed write, `begin` does not try for retry_s
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._begin_timeout = begin_timeout_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None  # the group commit under way
        self._instance = secrets.token_hex(8)  # this process's hold on `replica`
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def recover(self) -> int:
        """Take this gateway's replica id, then close the started rows of its previous run
        and stale ones of any replica as `cancelled`; how many. Call before serving.
        Raises `ReplicaInUseError` when a live gateway holds the id."""
        if self.replica is not None:
            async with self._db.engine.begin() as conn:
                holder = await replicas.claim(
                    conn,
                    self.replica,
                    instance=self._instance,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    now_ms=self._now_ms(),
                    stale_after_ms=int(HOLD_LAPSES_S * 1000),
                )
            if holder is not None:
                raise ReplicaInUseError(
                    f"replica id {self.replica!r} is held by a live gateway (pid {holder.pid} "
                    f"on {holder.host}); give each gateway its own HEADRACE_REPLICA_ID, or "
                    f"wait {HOLD_LAPSES_S:.0f} s if that gateway is gone"
                )
        before = int(self._clock() - self._stale_after)
        async with self._db.session.begin() as session:
            closed = await usage_rows.close_orphans(session, replica=self.replica, before=before)
        if closed:
            log.warning("usage_orphans_closed", count=closed, replica=self.replica)
        return closed

    async def begin(self, event: UsageEvent) -> bool:
        """Write `event` (status `started`) before the request's work; True once committed.
        With the database down or slow it gives up waiting after `begin_timeout_s` (False)
        and the request goes on: its row is still written, just not before its work."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._begun.append((event, future, loop.time() + self._begin_timeout))
        if self._overdue is None:
            self._overdue = loop.call_later(self._begin_timeout, self._give_up_waiting)
        if self._committer is None or self._committer.done():
            # The first request to find no commit under way starts one for every started
            # row queued (group commit, without waiting for the writer task to be
            # scheduled); the others arriving meanwhile are written by it or its next round.
            self._committer = loop.create_task(self._commit_begun())
        # A client hanging up cancels its own future only: the shared commit runs on in the
        # committer's task and writes its row all the same.
        return await future

    def _give_up_waiting(self) -> None:
        """Requests that have waited `begin_timeout_s` for their started row go on (False);
        the rows stay queued. One timer for the queue, for its oldest row, rather than a
        timeout per request."""
        self._overdue = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for event, future, deadline in self._begun:
            if deadline > now:
                self._overdue = loop.call_at(deadline, self._give_up_waiting)
                return
            if not future.done():
                log.warning("usage_begin_slow", request_id=event.request_id)
                future.set_result(False)

    async def _commit_begun(self) -> None:
        """Write started rows until none is queued (a write takes them off the queue; an
        outage leaves them to the writer and ends this)."""
        while self._begun:
            async with self._lock:
                if time.monotonic() < self._failed_until:  # an outage: leave it to the writer
                    self._release_begun()
                    self._wake.set()
                    return
                if not await self._write_logged():
                    return  # the rows stay queued: the writer retries them

    def record(self, event: UsageEvent) -> None:
        """The request's final event, to be written over its started row."""
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
            log.error("usage_event_dropped", queued=len(self._queue))
        self._queue.append(event)
        self._wake.set()

    def discard(self, request_id: str) -> None:
        """The request ended before any work: remove its started row."""
        self._discarded.append(request_id)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._begun) + len(self._queue) + len(self._discarded)

    async def flush(self) -> None:
        """Write everything queued now; raises if the database refuses."""
        while self.pending:
            # Started rows go first, all of them before any end: an end or a discard is
            # queued after its own begin, so its begin is in this transaction or an earlier
            # one, and a discard cannot run before the row it removes exists.
            begun = [self._begun[i] for i in range(min(BATCH, len(self._begun)))]
            ended: list[UsageEvent] = []
            discarded: list[str] = []
            if len(begun) == len(self._begun):
                ended = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
                discarded = [self._discarded[i] for i in range(min(BATCH, len(self._discarded)))]
            statements = usage_rows.ledger_writes(
                self._paramstyle,
                _COLUMNS,
                [self._row(e) for e, _, _ in begun],
                [self._row(e) for e in ended],
                discarded,
                rows_per_statement=self._rows_per_statement,
            )
            if self._writer is not None:
                await self._writer.run(statements)
            else:
                async with self._db.engine.begin() as conn:
                    await usage_rows.write(conn, statements)
            for _, future, _ in begun:
                self._begun.popleft()
                if not future.done():
                    future.set_result(True)
            for _ in ended:
                self._queue.popleft()
            for _ in discarded:
                self._discarded.popleft()

    async def close(self) -> None:
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None
        if self._task is not None:
            # A write cut short here rolls back or, if it committed, is skipped on rewrite.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._committer is not None:
            with contextlib.suppress(Exception):
                await self._committer
        try:
            async with self._lock:
                await self.flush()
        except Exception:
            log.exception("usage_ledger_close_failed", unwritten=self.pending)
            return  # keep the hold: rows may still be open, a restart here closes them
        finally:
            if self._writer is not None:
                await self._writer.close()
        if self.replica is not None:
            with contextlib.suppress(Exception):  # unreleased, the hold lapses on its own
                async with self._db.engine.begin() as conn:
                    await replicas.release(conn, self.replica, instance=self._instance)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _heartbeat(self) -> None:
        if self.replica is None:
            return
        async with self._db.engine.begin() as conn:
            held = await replicas.heartbeat(
                conn, self.replica, instance=self._instance, now_ms=self._now_ms()
            )
        if not held:
            log.error("replica_hold_lost", replica=self.replica)

    def _row(self, event: UsageEvent) -> tuple[Any, ...]:
        # Shallow: every field is a scalar (`asdict` deep-copies, a tenth of a request's CPU).
        return (*_event_values(event), self.replica)

    async def _write_logged(self) -> bool:
        try:
            await self.flush()
        except Exception:
            log.exception("usage_write_failed", queued=self.pending)
            self._failed_until = time.monotonic() + self._retry_s
            self._release_begun()
            return False
        return True

    def _release_begun(self) -> None:
        """Requests waiting on their started row go on rather than wait out an outage: the
        rows stay queued for the writer."""
        for _, future, _ in self._begun:
            if not future.done():
                future.set_result(False)

    async def _run(self) -> None:
        delay = self._retry_s
        next_sweep = time.monotonic() + SWEEP_S
        next_beat = time.monotonic() + HEARTBEAT_S
        while True:
            # `asyncio.timeout`, not `wait_for`: on 3.11 `wait_for` can swallow the
            # cancellation `close` sends when the wake-up lands at the same moment.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(next_sweep, next_beat) - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_S
                with contextlib.suppress(Exception):  # the next beat tries again
                    await self._heartbeat()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_S
                with contextlib.suppress(Exception):  # the next sweep tries again
                    await self._sweep()
            async with self._lock:
                written = await self._write_logged()
            if written:
                delay = self._retry_s
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_s)
                self._wake.set()

    async def _sweep(self) -> None:
        before = int(self._clock() - self._stale_after)
        async with self._db.session.begin() as session:
            closed = await usage_rows.close_orphans(session, replica=None, before=before)
        if closed:
            log.warning("usage_stale_rows_closed", count=closed)
