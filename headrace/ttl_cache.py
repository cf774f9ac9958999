"""A value per key read at most once per `ttl_s`, so the data plane never queries the
database per request: API keys, rate limits, each project's safety and privacy policy.

    cache = TtlCache[Policy](ttl_s=1.0)
    policy = await cache.get(project_id, lambda: load(project_id))

The TTL bounds how late a change made elsewhere (another replica, the CLI) takes effect.
The requests that find one key's entry expired share one load, not one each.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 10_000  # kept in memory, the least recently used dropped


class TtlCache(Generic[T]):
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[T]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value of `key`, or `load()`'s (shared with other callers meanwhile)."""
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(load())
            self._loading[key] = pending
            pending.add_done_callback(lambda _: self._loading.pop(key, None))
        found = await asyncio.shield(pending)
        self._entries[key] = (now, found)
        self._entries.move_to_end(key)
        if len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        return found

    def drop_where(self, stale: Callable[[T], bool]) -> None:
        """Forget the entries whose value is `stale`: their next `get` loads again."""
        for key in [k for k, (_, value) in self._entries.items() if stale(value)]:
            del self._entries[key]
