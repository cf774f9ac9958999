"""The circuit breaker's states, and its invariants under any sequence of events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headrace.routing.breaker import BreakerPolicy, BreakerState, CircuitBreaker

POLICY = BreakerPolicy(
    consecutive_failures=3, error_rate=0.5, window=10, min_requests=6, cooldown_s=5.0,
    max_cooldown_s=20.0, probes=1,
)  # fmt: skip


def test_opens_after_consecutive_failures_and_probes_after_the_cooldown() -> None:
    b = CircuitBreaker(POLICY)
    for _ in range(2):
        b.failure(0.0)
    assert b.state is BreakerState.CLOSED
    b.failure(1.0)
    assert b.state is BreakerState.OPEN
    assert not b.allow(5.9)  # cooling down
    assert b.allow(6.0)  # half-open: one probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow(6.0)  # only one at a time
    b.success()
    assert b.state is BreakerState.CLOSED
    assert b.allow(6.1)


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() -> None:
    b = CircuitBreaker(POLICY)
    for _ in range(3):
        b.failure(0.0)
    cooldowns = []
    now = 0.0
    for _ in range(4):
        opened = now
        while not b.allow(now):
            now += 0.5
        cooldowns.append(now - opened)
        b.failure(now)
    assert cooldowns == [5.0, 10.0, 20.0, 20.0]


def test_opens_on_error_rate_without_a_streak() -> None:
    b = CircuitBreaker(POLICY)
    for i in range(6):  # fail, ok, fail, ok, ...: never 3 in a row, but half of them
        if i % 2:
            b.success()
        else:
            b.failure(0.0)
    assert b.state is BreakerState.CLOSED  # 3 failures of 6: exactly at 50%, opens next
    b.failure(0.0)
    assert b.state is BreakerState.OPEN


def test_successes_keep_it_closed() -> None:
    b = CircuitBreaker(POLICY)
    for i in range(100):
        if i % 5 == 0:
            b.failure(0.0)
        else:
            b.success()
    assert b.state is BreakerState.CLOSED


def test_a_probe_the_client_abandoned_frees_its_slot() -> None:
    b = CircuitBreaker(POLICY)
    for _ in range(3):
        b.failure(0.0)
    assert b.allow(10.0)
    assert not b.available(10.0)
    b.release_probe()
    assert b.available(10.0)


events = st.lists(
    st.tuples(st.sampled_from(["allow", "ok", "fail", "abandon"]), st.floats(0, 3)),
    max_size=200,
)


@given(events)
def test_half_open_lets_at_most_the_probes_through_until_one_ends(
    seq: list[tuple[str, float]],
) -> None:
    b = CircuitBreaker(POLICY)
    now = 0.0
    probes_since_an_ending = 0
    for op, dt in seq:
        now += dt
        if op == "allow":
            before = b.state
            allowed = b.allow(now)
            if before is BreakerState.OPEN and allowed:
                probes_since_an_ending = 0  # a new half-open period begins
            if allowed and b.state is BreakerState.HALF_OPEN:
                probes_since_an_ending += 1
            assert probes_since_an_ending <= POLICY.probes
        else:
            if op == "ok":
                b.success()
            elif op == "fail":
                b.failure(now)
            else:
                b.release_probe()
            probes_since_an_ending = 0


@given(events)
def test_open_refuses_everything_for_the_cooldown(seq: list[tuple[str, float]]) -> None:
    b = CircuitBreaker(POLICY)
    now = 0.0
    opened_at = None
    for op, dt in seq:
        now += dt
        was = b.state
        if op == "allow":
            allowed = b.allow(now)
            if opened_at is not None and now - opened_at < POLICY.cooldown_s:
                assert not allowed
        elif op == "ok":
            b.success()
        elif op == "fail":
            b.failure(now)
        else:
            b.release_probe()
        if b.state is BreakerState.OPEN and was is not BreakerState.OPEN:
            opened_at = now
        elif b.state is not BreakerState.OPEN:
            opened_at = None
