"""What a principal's key, project and org spent this day and month, from the usage ledger,
through a short-lived cache: budgets are checked on every request, the database is read at
most once per key per `ttl_s`."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from headrace.admission.auth import Principal
from headrace.admission.budgets import Period, Spend, period_starts
from headrace.admission.limits import Scope
from headrace.storage import usage as usage_rows
from headrace.storage.database import Database

_CACHE_SIZE = 10_000


class SpendCache:
    def __init__(
        self, db: Database, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._ttl = ttl_s
        self._clock = clock
        # key id -> (read at, day start it was read for, spend)
        self._cache: OrderedDict[str, tuple[float, int, Spend]] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[Spend]] = {}

    async def spend(self, principal: Principal, now: float) -> Spend:
        """Spend in the periods that contain `now` (the limiter's wall clock)."""
        day, month = period_starts(now)
        read_at = self._clock()
        hit = self._cache.get(principal.key_id)
        if hit is not None and hit[1] == day and read_at - hit[0] < self._ttl:
            return hit[2]
        # Concurrent requests of one key after its entry expired share one query.
        token = (principal.key_id, day)
        pending = self._loading.get(token)
        if pending is None:
            pending = asyncio.ensure_future(self._load(principal, day, month))
            self._loading[token] = pending
            pending.add_done_callback(lambda _: self._loading.pop(token, None))
        found = await asyncio.shield(pending)
        self._cache[principal.key_id] = (read_at, day, found)
        self._cache.move_to_end(principal.key_id)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return found

    async def _load(self, principal: Principal, day: int, month: int) -> Spend:
        async with self._db.session() as session:
            totals = await usage_rows.spend(
                session,
                org_id=principal.org_id,
                project_id=principal.project_id,
                api_key_id=principal.key_id,
                day_start=day,
                month_start=month,
            )
        out: dict[tuple[Scope, Period], int] = {}
        for (scope, period), value in totals.items():
            out[(_scope(scope), "day" if period == "day" else "month")] = value
        return out


def _scope(name: str) -> Scope:
    return "key" if name == "key" else "project" if name == "project" else "org"
