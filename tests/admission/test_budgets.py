"""Budgets as pure values: which budgets a principal has, which one is spent, the 429."""

from __future__ import annotations

import calendar

from headrace.admission.budgets import (
    Budget,
    budgets,
    period_end,
    period_starts,
    refusal,
    spent_budget,
    to_nanousd,
)
from headrace.admission.limits import Limits, ScopedLimits

# 2026-12-31T13:30:00Z: the last day of a year, so month and day both roll over.
NOW = calendar.timegm((2026, 12, 31, 13, 30, 0, 0, 0, 0))


def test_budgets_come_from_all_models_rows_only() -> None:
    scoped = [
        ScopedLimits("key", "k", Limits(spend_per_day_usd=1.5)),
        ScopedLimits("project", "p", Limits(spend_per_month_usd=100.0)),
        ScopedLimits("org", "o", Limits(spend_per_day_usd=9.0), model="big"),
        ScopedLimits("org", "o", Limits(requests_per_minute=5)),
    ]
    assert budgets(scoped) == (
        Budget("key", "k", "day", 1_500_000_000),
        Budget("project", "p", "month", 100_000_000_000),
    )


def test_periods_are_the_utc_day_and_the_calendar_month() -> None:
    day, month = period_starts(NOW)
    assert day == calendar.timegm((2026, 12, 31, 0, 0, 0, 0, 0, 0))
    assert month == calendar.timegm((2026, 12, 1, 0, 0, 0, 0, 0, 0))
    assert period_end("day", NOW) == calendar.timegm((2027, 1, 1, 0, 0, 0, 0, 0, 0))
    assert period_end("month", NOW) == calendar.timegm((2027, 1, 1, 0, 0, 0, 0, 0, 0))
    mid_year = calendar.timegm((2026, 6, 15, 0, 0, 0, 0, 0, 0))
    assert period_end("month", mid_year) == calendar.timegm((2026, 7, 1, 0, 0, 0, 0, 0, 0))


def test_a_budget_is_spent_once_spend_reaches_it() -> None:
    owed = (Budget("key", "k", "day", to_nanousd(1.0)), Budget("org", "o", "month", 50))
    assert spent_budget(owed, {}) is None
    assert spent_budget(owed, {("key", "day"): 999_999_999, ("org", "month"): 49}) is None
    assert spent_budget(owed, {("key", "day"): 1_000_000_000}) == owed[0]
    assert spent_budget(owed, {("key", "month"): 10**12, ("org", "month"): 50}) == owed[1]


def test_the_refusal_is_openais_insufficient_quota() -> None:
    budget = Budget("project", "proj_1", "month", to_nanousd(20.0))
    err = refusal(budget, {("project", "month"): to_nanousd(20.25)}, NOW)
    assert err.status_code == 429
    assert (err.error_type, err.code) == ("insufficient_quota", "insufficient_quota")
    assert "monthly budget of project proj_1 is $20.00 and $20.25" in err.message
    assert "2027-01-01T00:00:00Z" in err.message
    assert err.headers == {"x-should-retry": "false"}
