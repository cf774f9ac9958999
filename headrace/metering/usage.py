"""A request's usage as one value, and what it cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# How a request ended; "content_filter": moderation blocked its input or cut its output.
Status = Literal["ok", "error", "cancelled", "content_filter"]
# "started": a request's outbox row while it runs, written before its work.
EventStatus = Literal["started", "ok", "error", "cancelled", "content_filter"]


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
    prompt_id: str | None = None  # the registry prompt the request used, if any
    prompt_version: int | None = None
    # Which API (`chat.completions`, `completions`, `embeddings`, ...) and what served it.
    endpoint: str = "chat.completions"
    deployment: str = ""
    model_version: str = ""
    # Latency breakdown, ms from the request's arrival: handed to the engine (the gateway's
    # own stages) and first token; None when the request never got that far.
    gateway_ms: int | None = None
    ttft_ms: int | None = None

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
    prompt: tuple[str, int] | None = None,
    endpoint: str = "chat.completions",
    deployment: str = "",
    model_version: str = "",
    gateway_s: float | None = None,
    ttft_s: float | None = None,
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
        prompt_id=prompt[0] if prompt else None,
        prompt_version=prompt[1] if prompt else None,
        endpoint=endpoint,
        deployment=deployment,
        model_version=model_version,
        gateway_ms=_ms(gateway_s),
        ttft_ms=_ms(ttft_s),
    )


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
