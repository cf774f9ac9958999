"""The admit stage's rate limits: a principal's limits, a store's decision, a release.

    admission = await limiter.admit(principal, tokens=prompt + max output)   # or 429
    ...                                                                      # inference
    admission.release(used_tokens)                                           # refund, free seat

Limits come from the database through a short-lived cache (`LimitCache`), never per request;
the buckets live in a `LimitBackend`: in process (`MemoryBackend`) or in Redis, shared by
every replica (`redis_backend.RedisBackend`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from headrace.admission.auth import Principal
from headrace.admission.budgets import Spend, budgets, spent_budget
from headrace.admission.budgets import refusal as quota_refusal
from headrace.admission.limits import (
    Decision,
    Limits,
    Plan,
    Scope,
    ScopedLimits,
    headers,
    plan,
    refusal,
)
from headrace.admission.memory import MemoryBuckets
from headrace.admission.spend import SpendCache
from headrace.config import Settings
from headrace.ids import random_hex
from headrace.observability.logging import get_logger
from headrace.storage import limits as limit_rows
from headrace.storage.database import Database
from headrace.ttl_cache import TtlCache

Clock = Callable[[], float]
log = get_logger("headrace.limits")


class LimitSource(Protocol):
    async def for_principal(self, principal: Principal) -> Sequence[ScopedLimits]: ...


class SpendSource(Protocol):
    async def spend(self, principal: Principal, now: float) -> Spend: ...


class LimitBackend(Protocol):
    async def acquire(self, p: Plan, now: float) -> Decision: ...

    async def release(self, p: Plan, used_tokens: int, now: float) -> None: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """`MemoryBuckets` behind the backend interface."""

    def __init__(self, lease_ttl_s: float = 600.0) -> None:
        self.buckets = MemoryBuckets(lease_ttl_s)

    async def acquire(self, p: Plan, now: float) -> Decision:
        return self.buckets.acquire(p, now)

    async def release(self, p: Plan, used_tokens: int, now: float) -> None:
        self.buckets.release(p, used_tokens, now)

    async def close(self) -> None:
        return None


class LimitCache:
    """A key's, its project's and its org's limits (all models and per model), cached
    for `ttl_s` per key.

    The TTL bounds how late a changed limit takes effect on every replica, as for keys.
    """

    def __init__(self, db: Database, ttl_s: float = 1.0, clock: Clock = time.monotonic) -> None:
        self._db = db
        self._cache: TtlCache[tuple[ScopedLimits, ...]] = TtlCache(ttl_s, clock)

    async def for_principal(self, principal: Principal) -> Sequence[ScopedLimits]:
        return await self._cache.get(principal.key_id, lambda: self._load(principal))

    async def _load(self, principal: Principal) -> tuple[ScopedLimits, ...]:
        scopes: tuple[tuple[Scope, str], ...] = (
            ("key", principal.key_id),
            ("project", principal.project_id),
            ("org", principal.org_id),
        )
        async with self._db.session() as session:
            rows = await limit_rows.get_limits(session, scopes)
        order: dict[str, int] = {scope: i for i, (scope, _) in enumerate(scopes)}
        return tuple(
            ScopedLimits(
                row.scope,  # type: ignore[arg-type]  # the column only ever holds a Scope
                row.scope_id,
                Limits(
                    row.requests_per_minute,
                    row.tokens_per_minute,
                    row.max_concurrent_requests,
                    row.tokens_per_day,
                    row.spend_per_day_usd,
                    row.spend_per_month_usd,
                ),
                row.model,
            )
            for row in sorted(rows, key=lambda r: (order[r.scope], r.model))
        )


class Admission:
    """A request let in: its headers, and the reservation to settle when it ends."""

    __slots__ = ("_limiter", "_plan", "_released", "headers")

    def __init__(self, limiter: Limiter, p: Plan, response_headers: dict[str, str]) -> None:
        self._limiter = limiter
        self._plan = p
        self._released = False
        self.headers = response_headers

    @property
    def reserved_tokens(self) -> int:
        return self._plan.tokens

    def release(self, used_tokens: int) -> None:
        """Refund what was reserved and not used, free the seat. Idempotent, and never
        awaits, so it is safe in a `finally` that runs while the request is cancelled."""
        if self._released:
            return
        self._released = True
        if not self._plan.is_empty():
            self._limiter.settle(self._plan, used_tokens)


class Limiter:
    def __init__(
        self,
        source: LimitSource,
        backend: LimitBackend,
        *,
        spend: SpendSource | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._source = source
        self.backend = backend
        self._spend = spend
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    async def admit(self, principal: Principal, *, model: str, tokens: int) -> Admission:
        """Reserve one request and `tokens` tokens at every scope's limits for all models
        and for `model`, or raise a 429 (`insufficient_quota` once a budget is spent)."""
        scoped = [s for s in await self._source.for_principal(principal) if s.applies_to(model)]
        owed = budgets(scoped)
        if owed and self._spend is not None:  # checked first: a refusal takes nothing
            now = self._clock()
            spend = await self._spend.spend(principal, now)
            spent = spent_budget(owed, spend)
            if spent is not None:
                raise quota_refusal(spent, spend, now)
        p = plan(scoped, tokens=tokens, lease_id=random_hex(8))
        if p.is_empty():
            return Admission(self, p, {})
        decision = await self.backend.acquire(p, self._clock())
        if not decision.admitted:
            raise refusal(p, decision)
        return Admission(self, p, headers(decision.readings))

    def settle(self, p: Plan, used_tokens: int) -> None:
        """Release in a task of its own: the caller may be a cancelled request."""
        task = asyncio.get_running_loop().create_task(self._release(p, used_tokens))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _release(self, p: Plan, used_tokens: int) -> None:
        try:
            await self.backend.release(p, used_tokens, self._clock())
        except Exception:  # a lost refund is not worth a failed request; leases expire
            log.exception("limit_release_failed", lease=p.lease_id)

    async def drain(self) -> None:
        """Wait for releases in flight (shutdown, and tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending))

    async def close(self) -> None:
        await self.drain()
        await self.backend.close()


def build_limiter(settings: Settings, db: Database, *, clock: Clock = time.time) -> Limiter:
    """Redis when `redis_url` is set (limits hold across replicas), else in process."""
    source = LimitCache(db, settings.limits.cache_ttl_s)
    backend: LimitBackend = MemoryBackend(settings.limits.lease_ttl_s)
    if settings.redis_url:
        from headrace.admission.redis_backend import RedisBackend

        backend = RedisBackend.from_url(
            settings.redis_url,
            timeout_s=settings.limits.redis_timeout_s,
            lease_ttl_s=settings.limits.lease_ttl_s,
            failure=settings.limits.redis_failure,
        )
    spend = SpendCache(db, settings.limits.cache_ttl_s)
    return Limiter(source, backend, spend=spend, clock=clock)
