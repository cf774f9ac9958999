"""The usage ledger: every request's event, written to the database once.

`record` never blocks and never awaits (it is called from a request's `finally`, possibly
while the request is being cancelled); a writer task commits what has queued up in one
transaction (group commit), so a burst of requests costs a few transactions, not one each.
A failed write is retried with backoff and the events stay queued; the row's key is the
request id, so a batch that did commit but whose acknowledgement was lost is not counted
twice. `close` writes what is left. What is lost is what a process killed with SIGKILL had
queued: the last few milliseconds of events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import asdict

from headrace.metering.usage import UsageEvent
from headrace.observability.logging import get_logger
from headrace.storage import usage as usage_rows
from headrace.storage.database import Database

log = get_logger("headrace.metering")
BATCH = 500
# Beyond this many unwritten events (a long database outage) the oldest are dropped, loudly,
# rather than the process running out of memory.
MAX_QUEUED = 200_000


class UsageLedger:
    def __init__(self, db: Database, *, retry_s: float = 0.5, max_retry_s: float = 30.0) -> None:
        self._db = db
        self._queue: deque[UsageEvent] = deque()
        self._wake = asyncio.Event()
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(self, event: UsageEvent) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
            log.error("usage_event_dropped", queued=len(self._queue))
        self._queue.append(event)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        """Write everything queued now; raises if the database refuses."""
        while self._queue:
            batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
            async with self._db.session.begin() as session:
                await usage_rows.insert_events(session, [asdict(e) for e in batch])
            for _ in batch:
                self._queue.popleft()

    async def close(self) -> None:
        if self._task is not None:
            # A write cut short here rolls back or, if it committed, is skipped on rewrite.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            log.exception("usage_ledger_close_failed", unwritten=len(self._queue))

    async def _run(self) -> None:
        delay = self._retry_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                delay = self._retry_s
            except Exception:
                log.exception("usage_write_failed", queued=len(self._queue), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_s)
                self._wake.set()
