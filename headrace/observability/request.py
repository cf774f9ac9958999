"""What one request did, recorded as it goes: stage boundaries, token times, usage, outcome.

    record = RequestRecord(request_id)      # the receive stage creates it
    record.mark("auth")                     # each stage ends with a mark: it ran since the last
    async for ... in timed(events, record)  # the engine's events stamp token arrival times
    record.account(usage, status)           # the account stage
    telemetry.observe(record)               # metrics, the access log line and the trace

Plain data and arithmetic, no I/O: metrics, logs and traces are all read from it afterwards,
so a stage costs one clock read and the three views can never disagree.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NamedTuple

from headrace.engine.interface import Finished, GenerationEvent, TextDelta
from headrace.metering.usage import Status, UsageEvent


class Stage(NamedTuple):
    """A lifecycle stage, as seconds since the request was received (a tuple: a request
    makes ten of these, at half a frozen dataclass's cost)."""

    name: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """One moderation check: `input` or `output`; `allow`, `flag` or `block`."""

    stage: str
    action: str
    categories: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str = ""
    path: str = ""
    route: str = ""  # the route's template (`/v1/models/{model}`), never the raw path
    received_ns: int = field(default_factory=time.time_ns)  # wall clock, for traces
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    model: str = ""  # set once the model is known to be served: a bounded label
    project_id: str = ""
    org_id: str = ""
    tier: str = ""  # the caller's project tier, once authenticated
    fallback_model: str = ""  # the model that served instead of the one asked for
    stream: bool = False
    rejection: str = ""  # why the request was refused, see `metrics.REJECTION_REASONS`
    outcome: Status | None = None  # how an admitted request ended
    usage: UsageEvent | None = None
    traceparent: str = ""  # the client's W3C trace context, as sent
    # This request's trace and root span, chosen on arrival so calls it makes (upstreams,
    # workers) carry a `traceparent` naming the span the trace will hold.
    trace_id: int = field(default_factory=lambda: random.getrandbits(128) or 1)
    span_id: int = field(default_factory=lambda: random.getrandbits(64) or 1)
    sampled: bool = True
    stages: list[Stage] = field(default_factory=list)
    engine_submitted_s: float | None = None
    engine_queue_s: float | None = None  # the engine's own report of the wait, if it gives one
    # The highest prompt-injection score of the request's tool results (None: it had none),
    # and what the project's policy made of it: "flagged", "blocked" or "".
    injection_score: float | None = None
    injection: str = ""
    # Moderation decisions, one per check: (stage, action, categories over threshold).
    # Category names only, never the text checked.
    safety: list[SafetyVerdict] = field(default_factory=list)
    token_times_s: list[float] = field(default_factory=list)  # one per engine token event
    output_tokens_timed: int = 0
    response_started_s: float | None = None  # the response's first byte (headers) left
    ended_s: float | None = None
    _last_mark_s: float = 0.0

    def continue_trace(self, traceparent: str) -> None:
        """Join the client's trace when it sent a valid W3C `traceparent`."""
        self.traceparent = traceparent
        parts = traceparent.strip().split("-")
        if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
            return
        try:
            trace_id, flags = int(parts[1], 16), int(parts[3], 16)
            int(parts[2], 16)
        except ValueError:
            return
        if trace_id:
            self.trace_id, self.sampled = trace_id, bool(flags & 1)

    def outgoing_traceparent(self) -> str:
        """The `traceparent` for a call this request makes: a child of its root span."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"

    def now_s(self) -> float:
        """Seconds since the request was received."""
        return time.perf_counter() - self.started

    def mark(self, stage: str) -> None:
        """`stage` ran from the previous mark (or the request's start) until now."""
        now = self.now_s()
        self.stages.append(Stage(stage, self._last_mark_s, now))
        self._last_mark_s = now

    def mark_at(self, stage: str, end_s: float) -> None:
        """`stage` ran from the previous mark until `end_s` (a moment already past)."""
        self.stages.append(Stage(stage, self._last_mark_s, end_s))
        self._last_mark_s = end_s

    def add_stage(self, stage: str, start_s: float, end_s: float) -> None:
        """A stage that overlaps others (the stream runs beside decoding)."""
        self.stages.append(Stage(stage, start_s, end_s))

    def account(self, usage: UsageEvent | None, status: Status) -> None:
        """The account stage: what the request used and how it ended."""
        start = self.now_s()
        self.usage = usage
        self.outcome = status
        if usage is not None:
            self.project_id = usage.project_id
            self.org_id = usage.org_id
        self.add_stage("account", start, self.now_s())

    def end(self, status: int) -> None:
        """The response's last byte left (or the connection is gone)."""
        self.status = status
        self.ended_s = self.now_s()
        if self.response_started_s is not None:
            name = "stream" if self.stream else "respond"
            self.add_stage(name, self.response_started_s, self.ended_s)

    @property
    def disconnected(self) -> bool:
        return self.outcome == "cancelled"

    # Latencies, all None when the request never got that far.

    @property
    def e2e_s(self) -> float | None:
        return self.ended_s

    @property
    def ttft_s(self) -> float | None:
        """Received to first token: what a client sees, gateway stages included."""
        return self.token_times_s[0] if self.token_times_s else None

    @property
    def queue_s(self) -> float | None:
        """Handed to the engine to its first step, as the engine reports it; from engines
        that do not, to the first token (the wait and the prefill together)."""
        if self.engine_queue_s is not None:
            return self.engine_queue_s
        if self.engine_submitted_s is None or not self.token_times_s:
            return None
        return self.token_times_s[0] - self.engine_submitted_s

    @property
    def inter_token_s(self) -> list[float]:
        times = self.token_times_s
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def time_per_output_token_s(self) -> float | None:
        """Decode time over the tokens after the first (vLLM's TPOT)."""
        times = self.token_times_s
        if len(times) < 2 or self.output_tokens_timed < 2:
            return None
        return (times[-1] - times[0]) / (self.output_tokens_timed - 1)


async def timed(
    events: AsyncIterator[tuple[int, GenerationEvent]], record: RequestRecord
) -> AsyncIterator[tuple[int, GenerationEvent]]:
    """`events`, passed through, stamping when the engine got the request and when each
    token arrived; marks the `queue`, `prefill` (when the engine tells the two apart) and
    `decode` stages."""
    submitted = record.engine_submitted_s = record.now_s()
    queued = True
    try:
        async for index, event in events:
            if queued and (isinstance(event, Finished) or event.token_ids):
                if isinstance(event, TextDelta) and event.queue_s is not None:
                    record.engine_queue_s = event.queue_s
                    record.mark_at("queue", submitted + event.queue_s)
                    record.mark("prefill")
                else:  # a Finished first: no token at all (an early stop)
                    record.mark("queue")
                queued = False
            if isinstance(event, TextDelta) and event.token_ids:
                record.token_times_s.append(record.now_s())
                record.output_tokens_timed += len(event.token_ids)
            yield index, event
    finally:  # also when the client went away mid-stream
        record.mark("queue" if queued else "decode")
