"""Load shedding: when a model's engine already has `max_waiting` requests queued, a new
one is refused at once (503 `overloaded`, `Retry-After`) instead of joining a queue it
would wait minutes in. Batch work (and `service_tier: flex`) is shed at half that depth,
so interactive traffic keeps the rest of the queue to itself (see routing/backpressure.py,
which bounds proxied deployments the same way)."""

from __future__ import annotations

from headrace.observability.request import RequestRecord
from headrace.routing.backpressure import bound, overloaded
from headrace.routing.registry import ChatModel


def shed_load(model: ChatModel, record: RequestRecord, *, batch: bool) -> None:
    limit = bound(model.settings.max_waiting, batch=batch)
    waiting = model.engine.stats().waiting
    if waiting >= limit:
        record.rejection = "overload"
        raise overloaded(model.settings.name, f"{waiting} requests waiting")
