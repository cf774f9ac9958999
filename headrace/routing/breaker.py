"""A circuit breaker per deployment: stop sending to one that keeps failing, then probe it.

    closed ──(N failures in a row, or error rate ≥ r over the window)──> open
    open ──(cooldown over)──> half_open ──(probe succeeds)──> closed
                                         └─(probe fails)──> open, cooldown doubled (capped)

`allow()` says whether a request may go now (in half-open, only `probes` at a time);
`success()` / `failure()` report how one went. Pure: the clock is passed in.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    consecutive_failures: int = 5
    error_rate: float = 0.5  # over the last `window` outcomes, once `min_requests` are in
    window: int = 20
    min_requests: int = 10
    cooldown_s: float = 5.0
    max_cooldown_s: float = 60.0
    probes: int = 1  # requests let through at once while half-open


class CircuitBreaker:
    __slots__ = (
        "_cooldown",
        "_in_flight_probes",
        "_opened_at",
        "_outcomes",
        "_streak",
        "policy",
        "state",
    )

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self.state = BreakerState.CLOSED
        self._outcomes: deque[bool] = deque(maxlen=self.policy.window)  # True: a failure
        self._streak = 0
        self._opened_at = 0.0
        self._cooldown = self.policy.cooldown_s
        self._in_flight_probes = 0

    def allow(self, now: float) -> bool:
        """Whether a request may be sent now; a True in half-open takes a probe slot."""
        if self.state is BreakerState.OPEN:
            if now - self._opened_at < self._cooldown:
                return False
            self.state = BreakerState.HALF_OPEN
            self._in_flight_probes = 0
        if self.state is BreakerState.HALF_OPEN:
            if self._in_flight_probes >= self.policy.probes:
                return False
            self._in_flight_probes += 1
        return True

    def available(self, now: float) -> bool:
        """Like `allow`, without taking a probe slot: for choosing among deployments."""
        if self.state is BreakerState.OPEN:
            return now - self._opened_at >= self._cooldown
        if self.state is BreakerState.HALF_OPEN:
            return self._in_flight_probes < self.policy.probes
        return True

    def success(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._close()
            return
        self._streak = 0
        self._outcomes.append(False)

    def failure(self, now: float) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._open(now, self._cooldown * 2)
            return
        if self.state is BreakerState.OPEN:
            return  # a request sent before it opened: no new information
        self._streak += 1
        self._outcomes.append(True)
        p = self.policy
        failed = sum(self._outcomes)
        if self._streak >= p.consecutive_failures or (
            len(self._outcomes) >= p.min_requests and failed / len(self._outcomes) >= p.error_rate
        ):
            self._open(now, p.cooldown_s)

    def release_probe(self) -> None:
        """A probe that ended without a verdict (the client went away)."""
        if self.state is BreakerState.HALF_OPEN and self._in_flight_probes > 0:
            self._in_flight_probes -= 1

    def _open(self, now: float, cooldown: float) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = now
        self._cooldown = min(cooldown, self.policy.max_cooldown_s)

    def _close(self) -> None:
        self.state = BreakerState.CLOSED
        self._cooldown = self.policy.cooldown_s
        self._outcomes.clear()
        self._streak = 0
        self._in_flight_probes = 0
