"""What chat and legacy completions share after admission: metering a run, accounting
for it exactly once, and answering with JSON or an SSE stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel

from headrace.admission.auth import Principal
from headrace.admission.limiter import Admission
from headrace.api import sse
from headrace.api.accounting import accounted, accounted_failure, begun, once
from headrace.api.responses import json_response
from headrace.api.state import AppState
from headrace.engine.interface import Engine, GenerationEvent, GenerationRequest
from headrace.metering.usage import EventStatus, Prices, Status, UsageEvent, usage_event
from headrace.observability.request import RequestRecord
from headrace.routing.registry import ChatModel, RemoteModel
from headrace.safety.output_guard import OutputCheck


@dataclass(slots=True)
class Meter:
    """What a run used, counted as it streams, so a cut-short run is still measured."""

    id: str
    model: str
    created: int
    endpoint: str = "chat.completions"  # which API, on the usage event
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    engaged: bool = False  # the engine has the request: from here on there is usage
    record: RequestRecord = field(default_factory=lambda: RequestRecord(""))
    prompt: tuple[str, int] | None = None  # registry prompt id and version, if one was used
    # The check-output stage (None: the project's policy checks no output), and whether it
    # cut a choice short: the run then ends as `content_filter`.
    output_check: OutputCheck | None = None
    filtered: bool = False
    # Which deployment served it, when that is chosen per request (a proxied model).
    deployment: str | None = None
    model_version: str | None = None

    @property
    def used_tokens(self) -> int:
        return self.prompt_tokens + self.generated_tokens

    def checked(
        self,
        events: AsyncIterator[tuple[int, GenerationEvent]],
        engine: Engine,
        requests: Sequence[GenerationRequest],
    ) -> AsyncIterator[tuple[int, GenerationEvent]]:
        """`events` (from `merged_events`) through the check-output stage."""
        if self.output_check is None:
            return events
        return self.output_check.wrap(events, engine, requests)

    def usage(
        self, caller: Principal, model: ChatModel | RemoteModel, status: EventStatus
    ) -> UsageEvent:
        """The ledger's record of this run, however far it got."""
        settings, record = model.settings, self.record
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
            latency_s=record.now_s(),  # from the request's arrival, as the breakdown
            prices=Prices(settings.input_price_per_1m, settings.output_price_per_1m),
            status=status,
            prompt=self.prompt,
            endpoint=self.endpoint,
            deployment=model.deployment if self.deployment is None else self.deployment,
            model_version=model.version if self.model_version is None else self.model_version,
            gateway_s=record.engine_submitted_s,
            ttft_s=record.ttft_s,
        )


async def respond(
    state: AppState,
    caller: Principal,
    model: ChatModel | RemoteModel,
    admission: Admission,
    meter: Meter,
    *,
    stream: Callable[[], AsyncIterator[bytes]] | None,
    complete: Callable[[], Awaitable[BaseModel | dict[str, Any]]],
    headers: dict[str, str],
    first_event: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """Respond (streamed when `stream` is given), accounting for the run exactly once:
    the reservation's unused part is refunded and one usage event recorded, however the
    request ends. `first_event`, when given, runs once the started row is written and
    before the response starts: its failure is a plain HTTP error, not an error event."""

    @once
    def account(status: Status) -> None:
        if status == "ok" and meter.filtered:
            status = "content_filter"
        admission.release(meter.used_tokens)
        usage = meter.usage(caller, model, status) if meter.engaged else None
        meter.record.account(usage, status)
        if usage is not None:
            state.ledger.record(usage)
            state.abuse.observe_tokens(caller.key_id, meter.used_tokens)
        else:  # usage is work done: a request dropped before it began has none
            state.ledger.discard(meter.id)

    await begun(state.ledger, meter.usage(caller, model, "started"), account)
    if first_event is not None:
        await accounted_failure(first_event(), account)
    headers = headers | admission.headers | _served_headers(meter, model)
    if stream is not None:
        return sse.EventStream(
            stream(),
            account,
            headers=headers,
            heartbeat_s=state.settings.server.sse_heartbeat_s,
            drain=state.drain,
        )
    return json_response(await accounted(complete(), account), headers=headers)


def _served_headers(meter: Meter, model: ChatModel | RemoteModel) -> dict[str, str]:
    """What served the request (a rollout's version, a fallback's deployment), for the
    client and its logs."""
    deployment = model.deployment if meter.deployment is None else meter.deployment
    version = model.version if meter.model_version is None else meter.model_version
    served = {"x-headrace-deployment": deployment} if deployment else {}
    return served | ({"x-headrace-model-version": version} if version else {})
