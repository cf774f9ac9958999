"""Workloads are seeded and shaped as asked; arrivals follow the rate."""

from __future__ import annotations

import pytest

from headrace.bench.workload import arrivals, workload


def test_the_same_seed_sends_the_same_load() -> None:
    a = workload(20, input_len=30, output_len=10, spread=0.5, seed=3)
    assert a == workload(20, input_len=30, output_len=10, spread=0.5, seed=3)
    assert a != workload(20, input_len=30, output_len=10, spread=0.5, seed=4)
    assert arrivals(20, 5.0, seed=3) == arrivals(20, 5.0, seed=3)


def test_lengths_stay_within_the_spread() -> None:
    requests = workload(200, input_len=40, output_len=100, spread=0.25, seed=1)
    assert all(30 <= len(r.prompt.split()) <= 50 for r in requests)
    assert all(75 <= r.max_tokens <= 125 for r in requests)
    assert {r.max_tokens for r in workload(5, input_len=4, output_len=7)} == {7}


def test_poisson_arrivals_average_the_rate() -> None:
    times = arrivals(4000, 20.0, seed=0)
    assert times[0] == 0.0
    assert times == sorted(times)
    assert times[-1] / (len(times) - 1) == pytest.approx(1 / 20.0, rel=0.05)


def test_an_infinite_rate_sends_everything_at_once() -> None:
    assert arrivals(3, float("inf")) == [0.0, 0.0, 0.0]
