"""Bounded queues: how much work a pool takes before new requests are refused at once.

A local engine's queue (`max_waiting`) and a deployment's requests in flight from this
gateway (`max_outstanding`) are bounded. Past the bound a request gets 503 `overloaded`
with `Retry-After` instead of waiting minutes in line, and batch work (`/v1/batches` lines,
`service_tier: flex`) is refused at half of it, so interactive traffic keeps the rest.
"""

from __future__ import annotations

from headrace.errors import ServiceUnavailableError

BATCH_SHARE = 0.5


def bound(limit: int, *, batch: bool) -> int:
    """The share of `limit` a request may use: all of it, or half for batch work."""
    return max(1, int(limit * BATCH_SHARE)) if batch else limit


def overloaded(model: str, detail: str) -> ServiceUnavailableError:
    """The refusal of a saturated pool; `detail` says what is full."""
    return ServiceUnavailableError(
        f"The model `{model}` is overloaded ({detail}); retry shortly.",
        code="overloaded",
        headers={"Retry-After": "1"},
    )
