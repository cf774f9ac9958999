"""The batch worker: drains the batch queue in the database, a few lines at a time.

One round (`step`) strings the batch lifecycle together:

    validate   validating batches: parse the input file, store its lines (in_progress) or
               fail the batch with its `errors`
    cancel     cancelling batches: lines not started are skipped
    expire     running batches past their window: lines not started go to the error file
    claim/run  pending lines (and lines whose worker died) into free slots; each runs through
               the gateway's own pipeline as the batch's key, at batch priority
    finalize   batches with every line ended: write the output and error files, then
               completed / cancelled / expired

Lines run under a lease renewed while they run; a worker that dies stops renewing, and its
lines are claimed again once the lease lapses (at once when the same worker restarts). A
line's result is recorded with its claim checked (storage/batches.py), and its usage event
is keyed by a request id stable across attempts, so each line counts once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from headrace.batch.lines import InputCheck, InputLine, expired_line, output_line, usage_of
from headrace.config import BatchSettings
from headrace.observability.logging import get_logger
from headrace.storage.batches import Batches, ClaimedLine, StoredBatch
from headrace.storage.files import Files

log = get_logger("headrace.batch")
# Statuses a line is tried again for later rather than failed: the project's limits or
# the pool were full at that moment.
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_S = 30.0


@dataclass(frozen=True, slots=True)
class LineCall:
    """One batch line to run: the endpoint, the key it runs as and its request body."""

    endpoint: str
    api_key_id: str
    # Stable across attempts: the request id, and the key of its usage event.
    request_key: str
    body: bytes


@dataclass(frozen=True, slots=True)
class LineResponse:
    status_code: int
    request_id: str
    body: Any  # the response's JSON (an error envelope when not 2xx)
    retry_after_s: float | None = None


Execute = Callable[[LineCall], Awaitable[LineResponse]]


def request_key(batch_id: str, line: int) -> str:
    return f"{batch_id}-{line}"


def line_id(batch_id: str, line: int) -> str:
    return f"batch_req_{batch_id.removeprefix('batch_')}_{line}"


class BatchWorker:
    def __init__(
        self,
        batches: Batches,
        files: Files,
        execute: Execute,
        *,
        worker_id: str,
        settings: BatchSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._batches = batches
        self._files = files
        self._execute = execute
        self.worker_id = worker_id
        self._settings = settings
        self._clock = clock
        self._running: dict[tuple[str, int], tuple[ClaimedLine, asyncio.Task[None]]] = {}
        self._known: dict[str, StoredBatch] = {}  # batch id -> batch (endpoint, key)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()  # where `until_idle` may be awaited from
        self._task = self.loop.create_task(self._run())

    def wake(self) -> None:
        """Look for work now (a batch was created or cancelled here)."""
        self._idle.clear()
        self._wake.set()

    async def until_idle(self) -> None:
        """Wait until a round finds nothing to do and no line is running."""
        self.wake()
        await self._idle.wait()

    async def drain(self) -> None:
        """Without the background task: rounds, each followed by the lines it started,
        until one changes nothing (a one-shot run, or a test's clock-driven one)."""
        while await self.step() or self._running:
            await asyncio.gather(*(task for _, task in list(self._running.values())))

    async def close(self) -> None:
        """Stop; lines still running stay claimed and are run again after a restart."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        released = await self._batches.release(self.worker_id)
        if released:
            log.warning("batch_lines_released", count=released, worker=self.worker_id)
        renew_every = self._settings.lease_s / 3
        next_renewal = time.monotonic() + renew_every
        while True:
            try:
                busy = await self.step()
            except Exception:
                log.exception("batch_step_failed")
                busy = False
            if time.monotonic() >= next_renewal:
                next_renewal = time.monotonic() + renew_every
                with contextlib.suppress(Exception):  # the next renewal tries again
                    await self._renew()
            if busy:
                continue
            # Not if woken since this round began: that wake-up may bring work this
            # round did not see (a test's `until_idle` must not return before it ran).
            if not self._running and not self._wake.is_set():
                self._idle.set()
            timeout = min(self._settings.poll_interval_s, renew_every)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()

    async def step(self) -> bool:
        """One round of the lifecycle; True when it changed anything."""
        if not self._running and not await self._batches.any_open():
            return False  # the common case: one indexed read per poll
        now = self._clock()
        now_ms = int(now * 1000)
        changed = await self._validate()
        changed |= await self._batches.skip_unrun(now_ms) > 0
        changed |= (await self._batches.expire_unrun(int(now), now_ms, _expired_result)) > 0
        changed |= await self._claim(now_ms)
        for batch in await self._batches.settled():
            changed |= await self._finalize(batch)
        return changed

    async def _validate(self) -> bool:
        """Check each validating batch's input file, then store its lines: two passes over
        the file, so that a large one is never held whole (its requests go to the
        database a page at a time)."""
        changed = False
        for batch in await self._batches.validating():
            check = InputCheck(batch.endpoint)
            lines = await self._checked_lines(batch, check)
            if lines is not None:
                async for _ in lines:
                    pass
                if not check.errors:
                    # Checked again as it is read: the same file (files are immutable) passes.
                    lines = await self._checked_lines(batch, InputCheck(batch.endpoint))
            now = int(self._clock())
            if lines is None:
                error: dict[str, object] = {
                    "code": "file_not_found",
                    "message": "The input file was deleted.",
                }
                changed |= await self._batches.fail(batch.id, [error], now)
            elif check.errors:
                errors = [e.wire() for e in check.errors]
                changed |= await self._batches.fail(batch.id, errors, now)
            else:
                pairs = ((line.custom_id, line.body) async for line in lines)
                changed |= await self._batches.start(batch.id, pairs, check.model, now)
        return changed

    async def _checked_lines(
        self, batch: StoredBatch, check: InputCheck
    ) -> AsyncIterator[InputLine] | None:
        """`batch`'s requests as its input file is read through `check` (which also
        collects the errors), until `check` is full; None when the file is gone."""
        raw_lines = await self._files.lines(batch.project_id, batch.input_file_id)
        return None if raw_lines is None else _through(raw_lines, check)

    async def _claim(self, now_ms: int) -> bool:
        free = self._settings.max_lines_in_flight - len(self._running)
        if free <= 0:
            return False
        lease_ms = int(self._settings.lease_s * 1000)
        claimed = await self._batches.claim(self.worker_id, free, now_ms=now_ms, lease_ms=lease_ms)
        for line in claimed:
            task = asyncio.get_running_loop().create_task(self._run_line(line))
            self._running[(line.batch_id, line.line)] = (line, task)
        return bool(claimed)

    async def _run_line(self, claimed: ClaimedLine) -> None:
        try:
            batch = await self._batch(claimed.batch_id)
            key = request_key(claimed.batch_id, claimed.line)
            call = LineCall(batch.endpoint, batch.api_key_id, key, claimed.body.encode())
            try:
                response = await self._execute(call)
            except Exception:
                log.exception("batch_line_failed", batch_id=claimed.batch_id, line=claimed.line)
                response = LineResponse(500, key, _server_error())
            if response.status_code in RETRY_STATUSES:
                delay = response.retry_after_s or min(float(claimed.attempt), MAX_RETRY_S)
                until_ms = int((self._clock() + delay) * 1000)
                await self._batches.postpone(self.worker_id, claimed, until_ms)
                return
            ok = 200 <= response.status_code < 300
            result = output_line(
                line_id(claimed.batch_id, claimed.line),
                claimed.custom_id,
                response.status_code,
                response.request_id,
                response.body,
            )
            tokens = usage_of(response.body) if ok else (0, 0, 0)
            recorded = await self._batches.finish(
                self.worker_id, claimed, ok=ok, result=json.dumps(result), tokens=tokens
            )
            if not recorded:  # the lease lapsed and another worker took the line
                log.warning("batch_line_claim_lost", batch_id=claimed.batch_id, line=claimed.line)
        finally:
            self._running.pop((claimed.batch_id, claimed.line), None)
            self._wake.set()

    async def _batch(self, batch_id: str) -> StoredBatch:
        batch = self._known.get(batch_id)
        if batch is None:
            found = await self._batches.by_id(batch_id)
            if found is None:
                raise LookupError(f"batch {batch_id} is gone")
            batch = self._known[batch_id] = found
        return batch

    async def _renew(self) -> None:
        lines = [line for line, _ in self._running.values()]
        until_ms = int((self._clock() + self._settings.lease_s) * 1000)
        await self._batches.renew(self.worker_id, lines, until_ms)

    async def _finalize(self, batch: StoredBatch) -> bool:
        """Write a settled batch's files and give it its final status."""
        now = int(self._clock())
        status = batch.status
        if status == "in_progress":
            if not await self._batches.move(batch.id, status, "finalizing", finalizing_at=now):
                return False  # another worker got there first
            status = "finalizing"
        output_id = await self._write(batch, ok=True) if batch.completed else None
        error_id = await self._write(batch, ok=False) if batch.failed else None
        if status == "cancelling":
            target = "cancelled"
        elif await self._batches.has_expired_lines(batch.id):
            target = "expired"
        else:
            target = "completed"
        moved = await self._batches.move(
            batch.id,
            status,
            target,
            output_file_id=output_id,
            error_file_id=error_id,
            **{f"{target}_at": int(self._clock())},
        )
        self._known.pop(batch.id, None)
        if moved:
            log.info("batch_finished", batch_id=batch.id, status=target)
        return moved

    async def _write(self, batch: StoredBatch, *, ok: bool) -> str:
        async def lines() -> Any:
            async for result in self._batches.results(batch.id):
                if (result.status == "ok") == ok:
                    yield (result.result + "\n").encode()

        suffix = "output" if ok else "error"
        now = int(self._clock())
        lifetime = batch.output_expires_after_s
        stored = await self._files.write(
            batch.project_id,
            filename=f"{batch.id}_{suffix}.jsonl",
            purpose="batch_output",
            chunks=lines(),
            max_bytes=1 << 62,  # what the batch wrote is not an upload: no limit
            now=now,
            expires_at=None if lifetime is None else now + lifetime,
            # The same id when written again (a worker died while finalizing).
            file_id=f"file-{batch.id.removeprefix('batch_')}-{suffix}",
        )
        return stored.id


def _expired_result(batch_id: str, line: int, custom_id: str) -> str:
    return json.dumps(expired_line(line_id(batch_id, line), custom_id))


def _server_error() -> dict[str, Any]:
    return {
        "error": {
            "message": "The server had an error while processing this request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


async def _through(raw_lines: AsyncIterator[bytes], check: InputCheck) -> AsyncIterator[InputLine]:
    number = 0
    async for raw in raw_lines:
        number += 1
        line = check.add(raw, number)
        if line is not None:
            yield line
        if check.full:
            return
