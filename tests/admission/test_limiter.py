"""The limiter: limits from the database through the cache, admissions released once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headrace.admission.auth import Principal
from headrace.admission.limiter import LimitCache, Limiter, MemoryBackend
from headrace.admission.limits import Limits, ScopedLimits
from headrace.control.keys import create_key
from headrace.control.limits import set_limits
from headrace.errors import RateLimitError
from headrace.storage import limits as limit_rows
from headrace.storage.database import Database


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Static:
    limits: list[ScopedLimits]

    async def for_principal(self, principal: Principal) -> list[ScopedLimits]:
        return self.limits


WHO = Principal("key_1", "proj_1", "org_1", ("inference",))


async def test_limits_changes_reach_the_cache_after_its_ttl(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    created = await create_key(db, "pepper", project="alpha")
    principal = Principal(created.id, created.project_id, created.org_id, ("inference",))
    clock = Clock()
    cache = LimitCache(db, ttl_s=1.0, clock=clock)
    assert await cache.for_principal(principal) == ()
    await set_limits(db, "org", created.org_id, Limits(requests_per_minute=5))
    await set_limits(db, "key", created.id, Limits(tokens_per_day=100))
    assert await cache.for_principal(principal) == ()  # still cached
    clock.now = 1.0
    found = {(s.scope, s.limits) for s in await cache.for_principal(principal)}
    assert found == {
        ("org", Limits(requests_per_minute=5)),
        ("key", Limits(tokens_per_day=100)),
    }
    await db.close()


async def test_release_is_idempotent_and_refunds_once() -> None:
    clock = Clock()
    source = Static([ScopedLimits("key", "key_1", Limits(tokens_per_minute=1000))])
    limiter = Limiter(source, MemoryBackend(), clock=clock)
    first = await limiter.admit(WHO, model="m", tokens=600)
    assert first.headers["x-ratelimit-remaining-tokens"] == "400"
    first.release(100)
    first.release(100)  # a second settle (error after finish, say) must not refund again
    await limiter.drain()
    second = await limiter.admit(WHO, model="m", tokens=600)
    assert second.headers["x-ratelimit-remaining-tokens"] == "300"
    with pytest.raises(RateLimitError) as info:
        await limiter.admit(WHO, model="m", tokens=600)
    assert info.value.headers["x-ratelimit-remaining-tokens"] == "300"
    await limiter.close()


async def test_no_limits_means_no_headers_and_nothing_to_release() -> None:
    limiter = Limiter(Static([]), MemoryBackend())
    admission = await limiter.admit(WHO, model="m", tokens=10**9)
    assert admission.headers == {}
    admission.release(0)
    await limiter.close()


async def test_a_burst_on_an_expired_entry_makes_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}")
    await db.migrate()
    queries = 0
    real = limit_rows.get_limits

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal queries
        queries += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(limit_rows, "get_limits", counting)
    cache = LimitCache(db, ttl_s=1.0, clock=Clock())
    results = await asyncio.gather(*(cache.for_principal(WHO) for _ in range(50)))
    assert queries == 1
    assert all(r == () for r in results)
    await db.close()


async def test_per_model_limits_apply_to_their_model_only() -> None:
    source = Static(
        [
            ScopedLimits("key", "key_1", Limits(requests_per_minute=10)),
            ScopedLimits("key", "key_1", Limits(requests_per_minute=1), model="big"),
        ]
    )
    limiter = Limiter(source, MemoryBackend(), clock=Clock())
    first = await limiter.admit(WHO, model="big", tokens=1)
    assert first.headers["x-ratelimit-remaining-requests"] == "0"  # the tighter one shows
    with pytest.raises(RateLimitError) as info:
        await limiter.admit(WHO, model="big", tokens=1)
    assert "big in key key_1" in info.value.message
    small = await limiter.admit(WHO, model="small", tokens=1)
    assert small.headers["x-ratelimit-remaining-requests"] == "8"  # the shared one counts both
    await limiter.close()
