"""Retry delays: exponential backoff with full jitter, within the request's time budget.

Retries happen only before a response's first token is sent (after that a retry would
duplicate streamed text), and only for failures worth retrying (connection errors,
timeouts, 429/5xx from an upstream).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3  # the first try included
    base_s: float = 0.05
    max_s: float = 2.0


def delay_s(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """How long to wait before try number `attempt + 1` (`attempt` >= 1 tries so far):
    uniform in [0, min(max, base * 2^(attempt-1))] (AWS's "full jitter": retries of many
    clients spread out instead of arriving together)."""
    cap = min(policy.max_s, policy.base_s * 2 ** (attempt - 1))
    return rng.uniform(0.0, cap)


def may_retry(policy: RetryPolicy, attempt: int, delay: float, budget_left_s: float) -> bool:
    """Another try is allowed: tries left, and the wait leaves time in the budget."""
    return attempt < policy.max_attempts and delay < budget_left_s
