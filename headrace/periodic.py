"""Work that runs every `interval_s` in the background while the app runs: a retention
purge, the poll of workers' queues.

    every = Periodic(step, interval_s=1.0, failed="worker_stats_failed")
    every.start()          # on the running loop, from the app's lifespan
    await every.close()    # at shutdown

A step that raises is logged (`failed` names the event) and the next one tries again; the
loop never dies of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from headrace.observability.logging import get_logger

log = get_logger("headrace.periodic")


class Periodic:
    def __init__(
        self, step: Callable[[], Awaitable[object]], *, interval_s: float, failed: str
    ) -> None:
        self._step = step
        self._interval = interval_s
        self._failed = failed
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:
                log.exception(self._failed)
            await asyncio.sleep(self._interval)
