"""The in-process limit store: buckets and leases in a dict, for one process.

The embedded default, and the fallback while Redis is unreachable. Synchronous and free of
I/O, so one `acquire` is atomic under asyncio without a lock, and the property tests drive
it directly with their own clock.
"""

from __future__ import annotations

from headrace.admission import bucket
from headrace.admission.limits import CONCURRENCY_RETRY_S, Decision, Plan, Reading, refunds

# Buckets untouched this long are full again and are dropped, so the dict does not grow.
_IDLE_FULL_S = 86_400.0


class MemoryBuckets:
    def __init__(self, lease_ttl_s: float = 600.0) -> None:
        self._lease_ttl = lease_ttl_s
        self._buckets: dict[str, bucket.BucketState] = {}
        self._leases: dict[str, dict[str, float]] = {}  # seat key -> lease id -> expiry

    def acquire(self, p: Plan, now: float) -> Decision:
        """All of the plan or nothing of it."""
        retry, refused = 0.0, None
        states = [self._buckets.get(c.key) or bucket.full(c.rate, now) for c in p.charges]
        for i, (c, state) in enumerate(zip(p.charges, states, strict=True)):
            w = bucket.wait(c.rate, state, c.cost, now)
            if w > 0 and w >= retry:  # the longest wait is the one to report
                retry, refused = w, i
        if refused is not None:
            return Decision(False, self._readings(p, states, now), retry, refused_charge=refused)
        for i, seat in enumerate(p.seats):
            held = self._live_leases(seat.key, now)
            if len(held) >= seat.limit:
                readings = self._readings(p, states, now)
                return Decision(False, readings, CONCURRENCY_RETRY_S, refused_seat=i)
        for c, state in zip(p.charges, states, strict=True):
            self._buckets[c.key] = bucket.take(c.rate, state, c.cost, now)
        for seat in p.seats:
            self._leases.setdefault(seat.key, {})[p.lease_id] = now + self._lease_ttl
        self._forget_idle(now)
        return Decision(True, self._readings(p, None, now))

    def release(self, p: Plan, used_tokens: int, now: float) -> None:
        """Give back the unused tokens and the seats of an admitted plan (exactly once:
        the limiter's `Admission` sees to that)."""
        for c, amount in refunds(p, used_tokens):
            state = self._buckets.get(c.key)
            if state is not None:
                self._buckets[c.key] = bucket.give_back(c.rate, state, amount, now)
        for seat in p.seats:
            self._leases.get(seat.key, {}).pop(p.lease_id, None)

    def in_flight(self, seat_key: str, now: float) -> int:
        return len(self._live_leases(seat_key, now))

    def _live_leases(self, key: str, now: float) -> dict[str, float]:
        held = self._leases.setdefault(key, {})
        for lease, expiry in list(held.items()):
            if expiry <= now:  # a request that never released: its slot comes back anyway
                del held[lease]
        return held

    def _readings(
        self, p: Plan, states: list[bucket.BucketState] | None, now: float
    ) -> tuple[Reading, ...]:
        out = []
        for i, c in enumerate(p.charges):
            state = states[i] if states is not None else self._buckets[c.key]
            out.append(
                Reading(c, bucket.level(c.rate, state, now), bucket.until_full(c.rate, state, now))
            )
        return tuple(out)

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) < 10_000:
            return
        for key, state in list(self._buckets.items()):
            if now - state.updated > _IDLE_FULL_S:
                del self._buckets[key]
        for key in [k for k, v in self._leases.items() if not v]:
            del self._leases[key]
