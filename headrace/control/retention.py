"""Retention policy per project, and the periodic purge that enforces it.

await set_retention(db, project_id, 30)     # content older than 30 days is purged
await set_retention(db, project_id, 0)      # content is never stored
purger = Purger(db, interval_s=3600, files=files); purger.start() ... await purger.close()
                                            # also deletes files past their expiry
"""

from __future__ import annotations

import time
from collections.abc import Callable

from headrace.errors import InvalidRequestError
from headrace.observability.logging import get_logger
from headrace.periodic import Periodic
from headrace.storage import retention as rows
from headrace.storage.database import Database
from headrace.storage.files import Files
from headrace.storage.retention import Purged

log = get_logger("headrace.retention")
MAX_DAYS = 36_500

__all__ = ["Purged", "Purger", "get_retention", "purge", "set_retention"]


async def set_retention(db: Database, project_id: str, days: int | None) -> None:
    """Set `project_id`'s retention in days (None: keep until deleted)."""
    if days is not None and not 0 <= days <= MAX_DAYS:
        raise InvalidRequestError(f"days must be 0 to {MAX_DAYS}.", param="days")
    await rows.set_retention(db, project_id, days, int(time.time()))


async def get_retention(db: Database, project_id: str) -> int | None:
    return await rows.get_retention(db, project_id)


async def purge(db: Database, clock: Callable[[], float] = time.time) -> Purged:
    """Delete every project's content that is older than its retention, now."""
    purged = await rows.purge(db, int(clock()))
    log.info(
        "retention_purged",
        conversations=purged.conversations,
        items=purged.items,
        responses=purged.responses,
    )
    return purged


class Purger:
    """Runs `purge` every `interval_s` in the background; a failed run is logged and the
    next one tries again."""

    def __init__(
        self,
        db: Database,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.time,
        files: Files | None = None,
    ) -> None:
        async def step() -> None:
            await purge(db, clock)
            if files is not None:  # uploads past their `expires_after`
                expired = await files.purge_expired()
                if expired:
                    log.info("files_expired", count=expired)

        self._every = Periodic(step, interval_s=interval_s, failed="retention_purge_failed")

    def start(self) -> None:
        self._every.start()

    async def close(self) -> None:
        await self._every.close()
