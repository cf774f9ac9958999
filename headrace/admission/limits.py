"""Rate limits as values: what a scope allows, what one request costs, what the answer was.

Pure: no I/O, no clock. A request is checked against every limit of its key, its project and
its organisation at once (`plan`); a backend (`memory.py`, `redis_backend.py`) answers with a
`Decision`, which becomes OpenAI's `x-ratelimit-*` headers or a 429 (`refusal`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from headrace.admission.bucket import Rate
from headrace.errors import RateLimitError

Scope = Literal["org", "project", "key"]
Dimension = Literal["requests", "tokens", "daily_tokens"]
SCOPES: tuple[Scope, ...] = ("key", "project", "org")
# A refusal for concurrency has no refill to wait for; this is how soon a slot tends to free.
CONCURRENCY_RETRY_S = 1.0

_NAMES: dict[Dimension, str] = {
    "requests": "requests per min (RPM)",
    "tokens": "tokens per min (TPM)",
    "daily_tokens": "tokens per day (TPD)",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What one scope allows; None means no limit of that kind."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_requests: int | None = None
    tokens_per_day: int | None = None
    # Budgets, in USD of the usage ledger's costs per UTC day and calendar month
    # (`budgets.py`); all models only.
    spend_per_day_usd: float | None = None
    spend_per_month_usd: float | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.requests_per_minute,
                self.tokens_per_minute,
                self.max_concurrent_requests,
                self.tokens_per_day,
                self.spend_per_day_usd,
                self.spend_per_month_usd,
            )
        )


@dataclass(frozen=True, slots=True)
class ScopedLimits:
    scope: Scope
    scope_id: str
    limits: Limits
    model: str = ""  # "": every model; else only requests for this model

    def applies_to(self, model: str) -> bool:
        return not self.model or self.model == model


@dataclass(frozen=True, slots=True)
class Charge:
    """`cost` units out of one bucket."""

    key: str
    rate: Rate
    cost: float
    dimension: Dimension
    scope: Scope
    scope_id: str
    model: str = ""


@dataclass(frozen=True, slots=True)
class Seat:
    """One of `limit` concurrent-request slots, held as a lease that expires on its own."""

    key: str
    limit: int
    scope: Scope
    scope_id: str
    model: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one request must get, all or nothing."""

    charges: tuple[Charge, ...]
    seats: tuple[Seat, ...]
    lease_id: str
    tokens: int

    def is_empty(self) -> bool:
        return not self.charges and not self.seats


@dataclass(frozen=True, slots=True)
class Reading:
    """A bucket after the decision: for the response headers."""

    charge: Charge
    remaining: float
    reset_s: float


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    readings: tuple[Reading, ...] = ()
    retry_after_s: float = 0.0
    # What refused, when refused: a charge's or a seat's index in the plan.
    refused_charge: int | None = None
    refused_seat: int | None = None


def plan(scoped: Sequence[ScopedLimits], *, tokens: int, lease_id: str) -> Plan:
    """The buckets and seats a request costing `tokens` (prompt + output budget) needs."""
    charges: list[Charge] = []
    seats: list[Seat] = []
    for s in scoped:
        base = f"{s.scope}:{s.scope_id}" + (f":model={s.model}" if s.model else "")
        lim = s.limits
        if lim.requests_per_minute is not None:
            charges.append(
                Charge(
                    f"{base}:rpm",
                    Rate.per_minute(lim.requests_per_minute),
                    1.0,
                    "requests",
                    s.scope,
                    s.scope_id,
                    s.model,
                )
            )
        if lim.tokens_per_minute is not None:
            charges.append(
                Charge(
                    f"{base}:tpm",
                    Rate.per_minute(lim.tokens_per_minute),
                    float(tokens),
                    "tokens",
                    s.scope,
                    s.scope_id,
                    s.model,
                )
            )
        if lim.tokens_per_day is not None:
            charges.append(
                Charge(
                    f"{base}:tpd",
                    Rate.per_day(lim.tokens_per_day),
                    float(tokens),
                    "daily_tokens",
                    s.scope,
                    s.scope_id,
                    s.model,
                )
            )
        if lim.max_concurrent_requests is not None:
            seats.append(
                Seat(f"{base}:seats", lim.max_concurrent_requests, s.scope, s.scope_id, s.model)
            )
    return Plan(tuple(charges), tuple(seats), lease_id, tokens)


def refunds(p: Plan, used_tokens: int) -> tuple[tuple[Charge, float], ...]:
    """What goes back when the request ends: the reserved tokens it did not use."""
    unused = max(0, p.tokens - used_tokens)
    return tuple(
        (c, min(c.cost, float(unused)))
        for c in p.charges
        if c.dimension != "requests" and unused > 0
    )


def headers(readings: Sequence[Reading]) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers from the tightest per-minute bucket of each kind."""
    out: dict[str, str] = {}
    for dimension, suffix in (("requests", "requests"), ("tokens", "tokens")):
        mine = [r for r in readings if r.charge.dimension == dimension]
        if not mine:
            continue
        tight = min(mine, key=lambda r: (r.remaining, -r.reset_s))
        out[f"x-ratelimit-limit-{suffix}"] = str(int(tight.charge.rate.capacity))
        out[f"x-ratelimit-remaining-{suffix}"] = str(max(0, math.floor(tight.remaining)))
        out[f"x-ratelimit-reset-{suffix}"] = duration(tight.reset_s)
    return out


def refusal(p: Plan, decision: Decision) -> RateLimitError:
    """The 429 for a refused decision, in OpenAI's words, with `Retry-After`."""
    retry = decision.retry_after_s
    extra = headers(decision.readings)
    if decision.refused_seat is not None:
        seat = p.seats[decision.refused_seat]
        message = (
            f"Rate limit reached for {_who(seat.scope, seat.scope_id, seat.model)} on "
            "concurrent requests: "
            f"Limit {seat.limit}. Please try again when a request in flight has finished."
        )
    else:
        index = decision.refused_charge if decision.refused_charge is not None else 0
        charge = p.charges[index]
        limit = int(charge.rate.capacity)
        name = _NAMES[charge.dimension]
        if math.isinf(retry):
            message = (
                f"Request too large for {_who(charge.scope, charge.scope_id, charge.model)} "
                f"on {name}: "
                f"Limit {limit}, Requested {int(charge.cost)}. Please reduce the length of "
                "the messages or max_tokens."
            )
        else:
            message = (
                f"Rate limit reached for {_who(charge.scope, charge.scope_id, charge.model)} "
                f"on {name}: "
                f"Limit {limit}, Requested {int(charge.cost)}. "
                f"Please try again in {duration(retry)}."
            )
    if not math.isinf(retry):
        extra["retry-after"] = str(max(1, math.ceil(retry)))
        extra["retry-after-ms"] = str(max(1, math.ceil(retry * 1000)))
    return RateLimitError(message, headers=extra)


def _who(scope: Scope, scope_id: str, model: str) -> str:
    return f"{model} in {scope} {scope_id}" if model else f"{scope} {scope_id}"


def duration(seconds: float) -> str:
    """Go-style durations as OpenAI writes them: `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    ms = math.ceil(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs
