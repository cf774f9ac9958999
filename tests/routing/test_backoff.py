"""Retry delays: bounded, jittered, within the budget."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from headrace.routing.backoff import RetryPolicy, delay_s, may_retry


@given(st.integers(1, 50), st.integers(0, 2**32))
def test_delays_are_jittered_within_an_exponential_cap(attempt: int, seed: int) -> None:
    policy = RetryPolicy(max_attempts=5, base_s=0.05, max_s=2.0)
    d = delay_s(policy, attempt, random.Random(seed))
    assert 0.0 <= d <= min(2.0, 0.05 * 2 ** (attempt - 1))


def test_delays_spread_out() -> None:
    rng = random.Random(7)
    delays = [delay_s(RetryPolicy(), 3, rng) for _ in range(200)]
    assert max(delays) - min(delays) > 0.1  # not all retries at one moment


def test_no_retry_past_the_attempts_or_the_budget() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert may_retry(policy, 1, 0.1, budget_left_s=5.0)
    assert may_retry(policy, 2, 0.1, budget_left_s=5.0)
    assert not may_retry(policy, 3, 0.1, budget_left_s=5.0)
    assert not may_retry(policy, 1, 0.5, budget_left_s=0.4)
