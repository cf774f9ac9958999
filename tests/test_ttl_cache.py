"""The TTL cache behind keys, limits and per-project policies: one load per key per TTL,
shared by the callers that find the entry expired, and forgotten on demand."""

from __future__ import annotations

import asyncio

from headrace.ttl_cache import TtlCache


async def test_one_load_per_ttl_shared_by_concurrent_callers() -> None:
    now = [0.0]
    loads: list[str] = []
    cache: TtlCache[str] = TtlCache(1.0, clock=lambda: now[0])

    async def load(key: str) -> str:
        loads.append(key)
        await asyncio.sleep(0)  # callers arriving meanwhile wait for this load
        return f"{key}@{now[0]}"

    values = await asyncio.gather(*(cache.get("k", lambda: load("k")) for _ in range(20)))
    assert set(values) == {"k@0.0"}
    assert loads == ["k"]
    now[0] = 0.5
    assert await cache.get("k", lambda: load("k")) == "k@0.0"  # fresh: no load
    now[0] = 1.5
    assert await cache.get("k", lambda: load("k")) == "k@1.5"
    assert loads == ["k", "k"]


async def test_dropped_entries_load_again() -> None:
    cache: TtlCache[int] = TtlCache(60.0)
    calls = 0

    async def load(value: int) -> int:
        nonlocal calls
        calls += 1
        return value

    assert await cache.get("a", lambda: load(1)) == 1
    assert await cache.get("b", lambda: load(2)) == 2
    cache.drop_where(lambda v: v == 1)
    assert await cache.get("a", lambda: load(3)) == 3
    assert await cache.get("b", lambda: load(4)) == 2  # kept
    assert calls == 3
