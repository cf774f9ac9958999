"""Budgets: how much a key, project or org may spend per UTC day and per calendar month.

Pure: no I/O, no clock. Spend is the usage ledger's cost (input + output, nano-USD) of the
requests created in the current period; `spend.py` reads it. A budget refuses new requests
once what was spent has reached it, with OpenAI's 429 `insufficient_quota`. A request's input
counts from its start (its `started` row is priced), its output only when it ends, so the
requests in flight when a budget runs out still finish: a budget can be overrun by their
output (and by what other replicas spent in the last `limits.cache_ttl_s`), never by a
new request.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from headrace.admission.limits import Scope, ScopedLimits
from headrace.errors import QuotaExceededError

Period = Literal["day", "month"]
NANO_PER_USD = 1_000_000_000
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Budget:
    scope: Scope
    scope_id: str
    period: Period
    limit_nanousd: int


# What a principal's scopes spent this period: (scope, period) -> nano-USD.
Spend = Mapping[tuple[Scope, Period], int]


def to_nanousd(usd: float) -> int:
    return round(usd * NANO_PER_USD)


def budgets(scoped: Sequence[ScopedLimits]) -> tuple[Budget, ...]:
    """The budgets among a principal's limits; per-model rows carry none."""
    out: list[Budget] = []
    for s in scoped:
        if s.model:
            continue
        if s.limits.spend_per_day_usd is not None:
            out.append(Budget(s.scope, s.scope_id, "day", to_nanousd(s.limits.spend_per_day_usd)))
        if s.limits.spend_per_month_usd is not None:
            limit = to_nanousd(s.limits.spend_per_month_usd)
            out.append(Budget(s.scope, s.scope_id, "month", limit))
    return tuple(out)


def period_starts(now: float) -> tuple[int, int]:
    """Unix seconds at which the current UTC day and calendar month began."""
    day = int(now) - int(now) % _DAY_S
    t = time.gmtime(now)
    month = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0))
    return day, month


def period_end(period: Period, now: float) -> int:
    """Unix seconds at which the current period's budget starts again from zero."""
    day, _ = period_starts(now)
    if period == "day":
        return day + _DAY_S
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))


def spent_budget(owed: Sequence[Budget], spend: Spend) -> Budget | None:
    """The first budget (key before project before org, day before month) that is spent."""
    for b in owed:
        if spend.get((b.scope, b.period), 0) >= b.limit_nanousd:
            return b
    return None


def refusal(budget: Budget, spend: Spend, now: float) -> QuotaExceededError:
    """OpenAI's 429 for a spent quota. `x-should-retry: false` stops the official SDKs
    from retrying a refusal that will hold until the period ends."""
    spent = spend.get((budget.scope, budget.period), 0) / NANO_PER_USD
    limit = budget.limit_nanousd / NANO_PER_USD
    resets = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(period_end(budget.period, now)))
    return QuotaExceededError(
        f"You exceeded your current quota: the {budget.period}ly budget of "
        f"{budget.scope} {budget.scope_id} is ${limit:.2f} and ${spent:.2f} has been spent. "
        f"It resets at {resets}; raise the budget or wait until then.",
        headers={"x-should-retry": "false"},
    )
