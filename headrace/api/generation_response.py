"""What chat and legacy completions share after admission: metering a run, accounting
for it exactly once, and answering with JSON or an SSE stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from fastapi.responses import Response
from pydantic import BaseModel

from headrace.admission.auth import Principal
from headrace.admission.limiter import Admission
from headrace.api import sse
from headrace.api.accounting import AccountedStream, accounted, begun, once, settled
from headrace.api.responses import json_response
from headrace.api.state import AppState
from headrace.config import ModelSettings
from headrace.metering.usage import EventStatus, Prices, Status, UsageEvent, usage_event
from headrace.observability.request import RequestRecord


@dataclass(slots=True)
class Meter:
    """What a run used, counted as it streams, so a cut-short run is still measured."""

    id: str
    model: str
    created: int
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    engaged: bool = False  # the engine has the request: from here on there is usage
    started: float = field(default_factory=time.perf_counter)
    record: RequestRecord = field(default_factory=lambda: RequestRecord(""))

    @property
    def used_tokens(self) -> int:
        return self.prompt_tokens + self.generated_tokens

    def usage(self, caller: Principal, model: ModelSettings, status: EventStatus) -> UsageEvent:
        """The ledger's record of this run, however far it got."""
        return usage_event(
            request_id=self.id,
            created_at=self.created,
            org_id=caller.org_id,
            project_id=caller.project_id,
            api_key_id=caller.key_id,
            model=self.model,
            input_tokens=self.prompt_tokens,
            cached_tokens=self.cached_tokens,
            output_tokens=self.generated_tokens,
            latency_s=time.perf_counter() - self.started,
            prices=Prices(model.input_price_per_1m, model.output_price_per_1m),
            status=status,
        )


async def respond(
    state: AppState,
    caller: Principal,
    model: ModelSettings,
    admission: Admission,
    meter: Meter,
    *,
    stream: Callable[[], AsyncIterator[bytes]] | None,
    complete: Callable[[], Awaitable[BaseModel]],
    headers: dict[str, str],
) -> Response:
    """Respond (streamed when `stream` is given), accounting for the run exactly once:
    the reservation's unused part is refunded and one usage event recorded, however the
    request ends."""

    @once
    def account(status: Status) -> None:
        admission.release(meter.used_tokens)
        usage = meter.usage(caller, model, status) if meter.engaged else None
        meter.record.account(usage, status)
        if usage is not None:
            state.ledger.record(usage)
        else:  # usage is work done: a request dropped before it began has none
            state.ledger.discard(meter.id)

    await begun(state.ledger, meter.usage(caller, model, "started"), account)
    headers = headers | admission.headers
    if stream is not None:
        return AccountedStream(
            sse.guarded(
                settled(stream(), account), heartbeat_s=state.settings.server.sse_heartbeat_s
            ),
            account,
            media_type=sse.MEDIA_TYPE,
            headers=sse.HEADERS | headers,
        )
    return json_response(await accounted(complete(), account), headers=headers)
