"""The token bucket: the arithmetic of every rate limit, with no I/O and no clock of its own.

A bucket holds up to `capacity` units and refills continuously at `per_s` units a second.
Taking `cost` units needs `cost` units in the bucket; giving back (a refund of a reservation
that was not used) adds them again, never above `capacity`. Hence, for any window [a, b]:

    units taken - units given back  <=  capacity + per_s * (b - a)

which is the whole promise of a limit: a full burst, then the steady rate. Time is passed
in by the caller, so tests drive it and a shared store (Redis) can run the same sums.
The Lua script in `redis_backend.py` is a transcription of `level`, `wait` and `take`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    """A bucket's shape: how much it holds and how fast it refills."""

    capacity: float
    per_s: float

    @classmethod
    def per_minute(cls, limit: int) -> Rate:
        return cls(float(limit), limit / 60.0)

    @classmethod
    def per_day(cls, limit: int) -> Rate:
        return cls(float(limit), limit / 86_400.0)


@dataclass(slots=True)
class BucketState:
    """What a store keeps per bucket: the level at the moment it was last written."""

    level: float
    updated: float


def full(rate: Rate, now: float) -> BucketState:
    """A bucket nobody has touched yet."""
    return BucketState(rate.capacity, now)


def level(rate: Rate, state: BucketState, now: float) -> float:
    """The level at `now`; a clock that steps back refills nothing rather than draining."""
    elapsed = max(0.0, now - state.updated)
    return min(rate.capacity, state.level + elapsed * rate.per_s)


def wait(rate: Rate, state: BucketState, cost: float, now: float) -> float:
    """Seconds until `cost` can be taken: 0 now, `inf` if it never fits."""
    if cost > rate.capacity:
        return math.inf
    missing = cost - level(rate, state, now)
    if missing <= 0:
        return 0.0
    return missing / rate.per_s if rate.per_s > 0 else math.inf


def take(rate: Rate, state: BucketState, cost: float, now: float) -> BucketState:
    """The state after taking `cost`; the caller has checked `wait(...) == 0`."""
    return BucketState(level(rate, state, now) - cost, max(now, state.updated))


def give_back(rate: Rate, state: BucketState, amount: float, now: float) -> BucketState:
    """The state after a refund of `amount` unused units."""
    return BucketState(
        min(rate.capacity, level(rate, state, now) + amount), max(now, state.updated)
    )


def until_full(rate: Rate, state: BucketState, now: float) -> float:
    """Seconds until the bucket is back to its initial state (OpenAI's `reset`)."""
    missing = rate.capacity - level(rate, state, now)
    return missing / rate.per_s if missing > 0 and rate.per_s > 0 else 0.0
