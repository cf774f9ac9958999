"""The Redis store gives the in-process store's answers, atomically, shared by replicas;
and what happens when Redis is gone. Skipped when Redis is not on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.admission.limiter import MemoryBackend
from headrace.admission.limits import Decision, Limits, Plan, ScopedLimits, plan
from headrace.admission.redis_backend import RedisBackend
from headrace.errors import ServiceUnavailableError
from tests.conftest import _reachable

REDIS_URL = "redis://127.0.0.1:6379/15"
REDIS_UP = _reachable("127.0.0.1", 6379)
needs_redis = pytest.mark.skipif(not REDIS_UP, reason="Redis is not reachable on 6379")
UNREACHABLE = "redis://127.0.0.1:1/0"


def _plan(limits: Limits, scope_id: str, tokens: int = 1, lease: str = "l") -> Plan:
    return plan(
        [
            ScopedLimits("key", scope_id, limits),
            ScopedLimits("org", scope_id + "-org", Limits(requests_per_minute=1000)),
        ],
        tokens=tokens,
        lease_id=lease,
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[MemoryBackend | RedisBackend]:
    if request.param == "memory":
        yield MemoryBackend(lease_ttl_s=60)
        return
    redis = RedisBackend.from_url(REDIS_URL, lease_ttl_s=60)
    yield redis
    await redis.close()


def _id() -> str:
    return secrets.token_hex(6)


async def test_rpm_two_refuses_the_third(backend: MemoryBackend | RedisBackend) -> None:
    p = _plan(Limits(requests_per_minute=2), _id())
    assert (await backend.acquire(p, 0.0)).admitted
    assert (await backend.acquire(p, 0.0)).admitted
    third = await backend.acquire(p, 0.0)
    assert not third.admitted
    assert third.refused_charge == 0
    assert third.retry_after_s == pytest.approx(30.0)
    assert (await backend.acquire(p, 30.0)).admitted


async def test_refusal_takes_nothing(backend: MemoryBackend | RedisBackend) -> None:
    sid = _id()
    big = _plan(Limits(requests_per_minute=5, tokens_per_minute=100), sid, tokens=80)
    assert (await backend.acquire(big, 0.0)).admitted
    refused = await backend.acquire(big, 0.0)
    assert refused.refused_charge == 1
    assert refused.readings[0].remaining == pytest.approx(4)
    small = _plan(Limits(requests_per_minute=5, tokens_per_minute=100), sid, tokens=20)
    assert (await backend.acquire(small, 0.0)).readings[0].remaining == pytest.approx(3)


async def test_release_refunds_and_frees_seats(backend: MemoryBackend | RedisBackend) -> None:
    sid = _id()
    limits = Limits(tokens_per_minute=1000, max_concurrent_requests=1)
    a = _plan(limits, sid, tokens=600, lease="a")
    assert (await backend.acquire(a, 0.0)).admitted
    b = _plan(limits, sid, tokens=300, lease="b")
    assert (await backend.acquire(b, 0.0)).refused_seat == 0
    await backend.release(a, 100, 0.0)
    after = await backend.acquire(_plan(limits, sid, tokens=900, lease="c"), 0.0)
    assert after.admitted
    assert after.readings[0].remaining == pytest.approx(0)


async def test_leases_of_a_dead_replica_lapse(backend: MemoryBackend | RedisBackend) -> None:
    sid = _id()
    limits = Limits(max_concurrent_requests=1)
    assert (await backend.acquire(_plan(limits, sid, lease="dead"), 0.0)).admitted
    assert not (await backend.acquire(_plan(limits, sid, lease="x"), 59.0)).admitted
    assert (await backend.acquire(_plan(limits, sid, lease="x"), 61.0)).admitted


ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0, 20)),
        st.tuples(st.just("reserve"), st.integers(1, 300)),
        st.tuples(st.just("finish"), st.floats(0, 1)),
    ),
    max_size=40,
)


@needs_redis
@settings(max_examples=40, deadline=None)
@given(ops=ops, tpm=st.integers(100, 1000), rpm=st.integers(1, 10), seats=st.integers(1, 4))
def test_redis_answers_exactly_as_the_memory_store(
    ops: list[tuple[str, float]], tpm: int, rpm: int, seats: int
) -> None:
    """The Lua script is a transcription of `bucket.py`: same decisions, same readings."""
    asyncio.run(_compare(ops, Limits(rpm, tpm, seats)))


async def _compare(ops: list[tuple[str, float]], limits: Limits) -> None:
    memory, redis = MemoryBackend(lease_ttl_s=1e6), RedisBackend.from_url(REDIS_URL)
    sid, now, open_ = _id(), 1_700_000_000.0, []
    try:
        for i, (op, value) in enumerate(ops):
            if op == "advance":
                now += value
            elif op == "reserve":
                p = _plan(limits, sid, tokens=int(value), lease=f"l{i}")
                mine, theirs = await memory.acquire(p, now), await redis.acquire(p, now)
                _same(mine, theirs)
                if mine.admitted:
                    open_.append(p)
            elif open_:
                p = open_.pop(int(value * (len(open_) - 1)))
                used = int(p.tokens * value)
                await memory.release(p, used, now)
                await redis.release(p, used, now)
    finally:
        await redis.close()


def _same(a: Decision, b: Decision) -> None:
    assert (a.admitted, a.refused_charge, a.refused_seat) == (
        b.admitted,
        b.refused_charge,
        b.refused_seat,
    )
    assert a.retry_after_s == pytest.approx(b.retry_after_s, rel=1e-9, abs=1e-6)
    for x, y in zip(a.readings, b.readings, strict=True):
        assert x.remaining == pytest.approx(y.remaining, rel=1e-9, abs=1e-6)
        assert x.reset_s == pytest.approx(y.reset_s, rel=1e-9, abs=1e-6)


@needs_redis
async def test_one_limit_across_replicas_under_contention() -> None:
    """Two replicas' stores, 400 concurrent requests, 60 RPM: exactly 60 get in."""
    # A generous timeout: this is about atomicity, and on a loaded machine 400 requests
    # queued for a pool can pass the default 0.5 s, which fails open (limits per replica).
    replicas = [RedisBackend.from_url(REDIS_URL, timeout_s=10) for _ in range(2)]
    sid = _id()
    p = _plan(Limits(requests_per_minute=60), sid)
    decisions = await asyncio.gather(*(replicas[i % 2].acquire(p, 5.0) for i in range(400)))
    assert sum(d.admitted for d in decisions) == 60
    # 200 at once per replica is more than its connection pool: they queue, none fails over.
    assert not any(r.degraded for r in replicas)
    for r in replicas:
        await r.close()


async def test_fail_open_limits_each_replica_locally() -> None:
    backend = RedisBackend.from_url(UNREACHABLE, timeout_s=0.2, failure="open")
    p = _plan(Limits(requests_per_minute=1, max_concurrent_requests=1), _id())
    assert (await backend.acquire(p, 0.0)).admitted
    assert backend.degraded
    assert not (await backend.acquire(p, 0.0)).admitted  # the fallback still limits
    await backend.release(p, 0, 0.0)  # released where it was admitted: locally
    assert backend.fallback.in_flight(p.seats[0].key, 0.0) == 0
    await backend.close()


async def test_fail_closed_refuses_with_503() -> None:
    backend = RedisBackend.from_url(UNREACHABLE, timeout_s=0.2, failure="closed")
    with pytest.raises(ServiceUnavailableError) as info:
        await backend.acquire(_plan(Limits(requests_per_minute=1), _id()), 0.0)
    assert info.value.status_code == 503
    assert info.value.headers["retry-after"] == "1"
    await backend.close()
