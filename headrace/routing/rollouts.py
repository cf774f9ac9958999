"""Every model's rollout as the router reads it: from the database at most once per
`ttl_s`, all models in one query, so the data plane never queries per request and a change
made on any replica (admin API, CLI) is in force on every replica within `ttl_s`.

    table = RolloutTable(db, ttl_s=1.0)
    plan = router.plan(model, rollouts=await table.current(), ...)

If the database cannot be read, the last table read stays in force (a routing decision
should not fail a request the deployments could serve), and the next request after `ttl_s`
tries again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping

from sqlalchemy.exc import SQLAlchemyError

from headrace.observability.logging import get_logger
from headrace.storage import rollouts as rollout_rows
from headrace.storage.database import Database

log = get_logger("headrace.routing")
Weights = tuple[tuple[str, float], ...]


def canonical(weights: Mapping[str, float]) -> Weights:
    """Weights in the order every replica uses (by version name), so a sticky key picks
    the same version everywhere; non-finite or negative values count as 0."""
    return tuple(
        (version, float(w) if math.isfinite(w) and w > 0 else 0.0)
        for version, w in sorted(weights.items())
    )


class RolloutTable:
    def __init__(
        self, db: Database, *, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._ttl = ttl_s
        self._clock = clock
        self._table: dict[str, Weights] = {}
        self._read_at: float | None = None
        self._loading: asyncio.Future[None] | None = None
        self._generation = 0  # bumped by `invalidate`: a read begun before it is stale

    async def current(self) -> Mapping[str, Weights]:
        """Model name to its rollout's weights; models without one are absent."""
        read_at = self._read_at
        if read_at is not None and self._clock() - read_at < self._ttl:
            return self._table
        # A burst after the entry expired makes one query, not one per request.
        loading = self._loading
        if loading is None:
            loading = self._loading = asyncio.ensure_future(self._load(self._generation))
            loading.add_done_callback(self._loaded)
        await asyncio.shield(loading)
        return self._table

    def invalidate(self) -> None:
        """Read again on the next request: this replica just changed a rollout."""
        self._generation += 1
        self._read_at = None
        self._loading = None

    async def _load(self, generation: int) -> None:
        started = self._clock()
        try:
            async with self._db.session() as session:
                rows = await rollout_rows.list_rollouts(session)
        except (SQLAlchemyError, OSError):
            log.exception("rollouts_unreadable", kept=len(self._table))
            rows = None
        if generation != self._generation:
            return  # invalidated while reading: a newer read decides
        if rows is not None:
            self._table = {row.model: canonical(row.weights) for row in rows}
        self._read_at = started

    def _loaded(self, done: asyncio.Future[None]) -> None:
        if self._loading is done:
            self._loading = None
