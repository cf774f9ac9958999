"""The in-process store: all-or-nothing admission, refunds, leases, and the window bound
under random interleavings (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.admission.limits import Limits, Plan, ScopedLimits, plan
from headrace.admission.memory import MemoryBuckets


def _plan(limits: Limits, tokens: int = 1, lease: str = "l", scope_id: str = "k") -> Plan:
    return plan([ScopedLimits("key", scope_id, limits)], tokens=tokens, lease_id=lease)


def test_rpm_two_refuses_the_third_and_refills() -> None:
    store = MemoryBuckets()
    p = _plan(Limits(requests_per_minute=2))
    assert store.acquire(p, 0.0).admitted
    assert store.acquire(p, 0.0).admitted
    third = store.acquire(p, 0.0)
    assert not third.admitted
    assert third.retry_after_s == 30.0
    assert store.acquire(p, 30.0).admitted


def test_refusal_takes_nothing_from_any_bucket() -> None:
    store = MemoryBuckets()
    both = plan(
        [
            ScopedLimits("key", "k", Limits(requests_per_minute=10)),
            ScopedLimits("org", "o", Limits(tokens_per_minute=100)),
        ],
        tokens=80,
        lease_id="a",
    )
    assert store.acquire(both, 0.0).admitted
    refused = store.acquire(both, 0.0)  # the org's tokens run out; the key's rpm must not move
    assert not refused.admitted
    assert refused.readings[0].remaining == 9


def test_unused_tokens_come_back_on_release() -> None:
    store = MemoryBuckets()
    p = _plan(Limits(tokens_per_minute=1000), tokens=600)
    decision = store.acquire(p, 0.0)
    assert decision.readings[0].remaining == 400
    store.release(p, used_tokens=100, now=0.0)
    again = store.acquire(_plan(Limits(tokens_per_minute=1000), tokens=900), 0.0)
    assert again.admitted


def test_concurrency_seats_are_leases() -> None:
    store = MemoryBuckets(lease_ttl_s=60)
    limits = Limits(max_concurrent_requests=2)
    a, b, c = (_plan(limits, lease=x) for x in "abc")
    assert store.acquire(a, 0.0).admitted
    assert store.acquire(b, 0.0).admitted
    assert store.acquire(c, 0.0).refused_seat == 0
    store.release(a, 0, 1.0)
    assert store.acquire(c, 1.0).admitted
    # b never releases (its replica died): its lease runs out and frees the seat.
    assert not store.acquire(_plan(limits, lease="d"), 59.0).admitted
    assert store.acquire(_plan(limits, lease="d"), 61.0).admitted


ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0, 30)),
        st.tuples(st.just("reserve"), st.integers(1, 400)),
        st.tuples(st.just("finish"), st.floats(0, 1)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops, tpm=st.integers(100, 1000), rpm=st.integers(1, 20), seats=st.integers(1, 5))
def test_never_more_than_burst_plus_refill_in_any_window(
    ops: list[tuple[str, float]], tpm: int, rpm: int, seats: int
) -> None:
    """Net tokens and requests admitted in any window [a, b] stay within
    capacity + rate * (b - a), and seats in use never pass the limit."""
    store = MemoryBuckets(lease_ttl_s=1e9)
    limits = Limits(requests_per_minute=rpm, tokens_per_minute=tpm, max_concurrent_requests=seats)
    now = 0.0
    open_: list[tuple[Plan, int]] = []
    token_events: list[tuple[float, float]] = []  # (time, +taken / -given back)
    request_times: list[float] = []
    for i, (op, value) in enumerate(ops):
        if op == "advance":
            now += value
        elif op == "reserve":
            p = _plan(limits, tokens=int(value), lease=f"l{i}")
            if store.acquire(p, now).admitted:
                open_.append((p, int(value)))
                token_events.append((now, value))
                request_times.append(now)
            assert len(open_) <= seats
        elif open_:
            p, reserved = open_.pop(int(value * (len(open_) - 1)))
            used = int(reserved * value)
            store.release(p, used, now)
            token_events.append((now, -(reserved - used)))
    _assert_window_bound(token_events, float(tpm), tpm / 60)
    _assert_window_bound([(t, 1.0) for t in request_times], float(rpm), rpm / 60)


def _assert_window_bound(events: list[tuple[float, float]], capacity: float, rate: float) -> None:
    for i, (start, _) in enumerate(events):
        net = 0.0
        for t, amount in events[i:]:
            net += amount
            assert net <= capacity + rate * (t - start) + 1e-6
