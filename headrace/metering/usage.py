"""A request's usage as one value, and what it cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "error", "cancelled"]  # how a request ended
# "started": a request's outbox row while it runs, written before its work.
EventStatus = Literal["started", "ok", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0


def cost_nanousd(price_per_1m: float, tokens: int) -> int:
    """Billionths of a dollar for `tokens` at `price_per_1m` USD per million tokens."""
    # USD per token is price / 1e6, in nano-USD that is price * 1e3.
    return round(price_per_1m * 1000 * tokens)


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """Exactly one per admitted request, however it ended."""

    request_id: str
    created_at: int  # unix seconds, when the request was admitted
    org_id: str
    project_id: str
    api_key_id: str
    model: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    latency_ms: int
    input_cost_nanousd: int
    output_cost_nanousd: int
    status: EventStatus

    @property
    def cost_usd(self) -> float:
        return (self.input_cost_nanousd + self.output_cost_nanousd) / 1e9


def usage_event(
    *,
    request_id: str,
    created_at: int,
    org_id: str,
    project_id: str,
    api_key_id: str,
    model: str,
    input_tokens: int,
    cached_tokens: int,
    output_tokens: int,
    latency_s: float,
    prices: Prices,
    status: EventStatus,
) -> UsageEvent:
    """The event for a request, priced: cached input tokens are billed as input for now."""
    return UsageEvent(
        request_id,
        created_at,
        org_id,
        project_id,
        api_key_id,
        model,
        input_tokens,
        cached_tokens,
        output_tokens,
        round(latency_s * 1000),
        cost_nanousd(prices.input_per_1m, input_tokens),
        cost_nanousd(prices.output_per_1m, output_tokens),
        status,
    )
