"""The token bucket's arithmetic, with time driven by hand."""

from __future__ import annotations

import math

import pytest

from headrace.admission import bucket
from headrace.admission.bucket import Rate

RPM_60 = Rate.per_minute(60)


def test_a_fresh_bucket_is_full_and_takes_its_capacity_at_once() -> None:
    state = bucket.full(RPM_60, 0.0)
    for _ in range(60):
        assert bucket.wait(RPM_60, state, 1, 0.0) == 0
        state = bucket.take(RPM_60, state, 1, 0.0)
    assert bucket.wait(RPM_60, state, 1, 0.0) == pytest.approx(1.0)


def test_refill_is_continuous_and_capped() -> None:
    state = bucket.take(RPM_60, bucket.full(RPM_60, 0.0), 60, 0.0)
    assert bucket.level(RPM_60, state, 30.0) == pytest.approx(30)
    assert bucket.level(RPM_60, state, 600.0) == 60
    assert bucket.until_full(RPM_60, state, 15.0) == pytest.approx(45)


def test_cost_above_capacity_never_fits() -> None:
    assert math.isinf(bucket.wait(RPM_60, bucket.full(RPM_60, 0.0), 61, 0.0))


def test_give_back_refunds_up_to_capacity() -> None:
    state = bucket.take(RPM_60, bucket.full(RPM_60, 0.0), 50, 0.0)
    assert bucket.level(RPM_60, bucket.give_back(RPM_60, state, 20, 0.0), 0.0) == 30
    assert bucket.level(RPM_60, bucket.give_back(RPM_60, state, 500, 0.0), 0.0) == 60


def test_a_clock_stepping_back_does_not_drain_or_refill() -> None:
    state = bucket.take(RPM_60, bucket.full(RPM_60, 100.0), 10, 100.0)
    assert bucket.level(RPM_60, state, 50.0) == 50
    later = bucket.take(RPM_60, state, 1, 50.0)
    assert later.updated == 100.0


def test_daily_rate() -> None:
    day = Rate.per_day(86_400)
    assert day.per_s == 1.0
