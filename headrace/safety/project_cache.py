"""A per-project value (a safety or privacy policy) read from the database at most once per
`ttl_s` per project, so the data plane never queries per request."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_PROJECTS = 10_000  # projects whose value is kept in memory, least recently used dropped


class ProjectCache(Generic[T]):
    def __init__(
        self,
        load: Callable[[str], Awaitable[T]],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_s
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[T]] = {}

    async def get(self, project_id: str) -> T:
        now = self._clock()
        hit = self._cache.get(project_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        # A burst on one project after its entry expired makes one query, not one each.
        pending = self._loading.get(project_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(project_id))
            self._loading[project_id] = pending
            pending.add_done_callback(lambda _: self._loading.pop(project_id, None))
        found = await asyncio.shield(pending)
        self._cache[project_id] = (now, found)
        self._cache.move_to_end(project_id)
        if len(self._cache) > MAX_PROJECTS:
            self._cache.popitem(last=False)
        return found
