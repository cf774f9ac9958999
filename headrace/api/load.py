"""Load shedding: when a model's engine already has `max_waiting` requests queued, a new
one is refused at once (503 `overloaded`, `Retry-After`) instead of joining a queue it
would wait minutes in. Batch work (and `service_tier: flex`) is shed at half that depth,
so interactive traffic keeps the rest of the queue to itself."""

from __future__ import annotations

from headrace.errors import ServiceUnavailableError
from headrace.observability.request import RequestRecord
from headrace.routing.registry import ChatModel

BATCH_SHARE = 0.5


def shed_load(model: ChatModel, record: RequestRecord, *, batch: bool) -> None:
    limit = model.settings.max_waiting
    if batch:
        limit = max(1, int(limit * BATCH_SHARE))
    waiting = model.engine.stats().waiting
    if waiting >= limit:
        record.rejection = "overload"
        raise ServiceUnavailableError(
            f"The model `{model.settings.name}` is overloaded ({waiting} requests waiting); "
            "retry shortly.",
            code="overloaded",
            headers={"Retry-After": "1"},
        )
