"""OpenTelemetry traces: one trace per request, one span per lifecycle stage.

Spans are written when the request ends, from its `RequestRecord`'s stage marks, with the
times the stages really had: the hot path pays one clock read per stage and nothing at all
when tracing is off (the default). A client's W3C `traceparent` makes the request's root
span a child of the caller's span, so its trace continues through Headrace.

The tracer provider is the app's own, never the process-wide global one: two apps in one
process (tests, a gateway beside a worker) trace independently.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from headrace import __version__
from headrace.config import TracingSettings
from headrace.observability.redaction import RedactingSpanExporter
from headrace.observability.request import RequestRecord

_PROPAGATOR = TraceContextTextMapPropagator()


class PlannedIds(IdGenerator):
    """Ids as the request chose them on arrival (`RequestRecord.trace_id`/`span_id`) for
    the span started right after `plan`, random ones otherwise: the root span then has the
    id that the request's calls to upstreams already named as their parent."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._trace_id: int | None = None
        self._span_id: int | None = None

    def plan(self, trace_id: int, span_id: int) -> None:
        self._trace_id, self._span_id = trace_id, span_id

    def generate_span_id(self) -> int:
        planned, self._span_id = self._span_id, None
        return planned if planned is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        planned, self._trace_id = self._trace_id, None
        return planned if planned is not None else self._random.generate_trace_id()


def tracer_provider(
    settings: TracingSettings, exporter: SpanExporter | None = None, *, redact: bool = True
) -> TracerProvider | None:
    """The provider `settings` ask for, or None when tracing is off; `exporter` (tests: an
    in-memory one) replaces the configured exporter and is flushed span by span. With
    `redact`, spans reach the exporter with their personal data redacted."""
    if exporter is None and settings.exporter == "none":
        return None
    resource = Resource.create(
        {"service.name": settings.service_name, "service.version": __version__}
    )
    provider = TracerProvider(resource=resource, id_generator=PlannedIds())

    def wrapped(inner: SpanExporter) -> SpanExporter:
        return RedactingSpanExporter(inner) if redact else inner

    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(wrapped(exporter)))
    elif settings.exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(wrapped(ConsoleSpanExporter())))
    else:
        # Imported here: the OTLP exporter pulls in protobuf, which only its users need.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Batched: a slow collector must never hold up a request.
        otlp = OTLPSpanExporter(settings.otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(wrapped(otlp)))
    return provider


def record_trace(tracer: Tracer, record: RequestRecord, ids: PlannedIds | None = None) -> str:
    """Write `record` as a trace; returns its trace id (hex) for the access log. With the
    provider's `ids`, the root span gets the ids the request chose on arrival."""
    parent = _PROPAGATOR.extract({"traceparent": record.traceparent})
    end_s = record.ended_s if record.ended_s is not None else record.now_s()
    if ids is not None:
        ids.plan(record.trace_id, record.span_id)
    root = tracer.start_span(
        f"{record.method} {record.route or record.path}",
        context=parent,
        kind=SpanKind.SERVER,
        start_time=record.received_ns,
        attributes=_attributes(record),
    )
    if record.status >= 500 or record.outcome == "error":
        root.set_status(Status(StatusCode.ERROR))
    inside = trace.set_span_in_context(root)
    for stage in record.stages:
        span = tracer.start_span(stage.name, context=inside, start_time=_ns(record, stage.start_s))
        span.end(end_time=_ns(record, stage.end_s))
    root.end(end_time=_ns(record, end_s))
    return f"{root.get_span_context().trace_id:032x}"


def _ns(record: RequestRecord, seconds: float) -> int:
    return record.received_ns + int(seconds * 1e9)


def _attributes(record: RequestRecord) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        "http.request.method": record.method,
        "http.route": record.route,
        "http.response.status_code": record.status,
        "headrace.request_id": record.request_id,
        "headrace.stream": record.stream,
    }
    if record.model:
        attrs["gen_ai.request.model"] = record.model
    if record.project_id:
        attrs["headrace.project_id"] = record.project_id
    if record.rejection:
        attrs["headrace.rejection"] = record.rejection
    if record.outcome is not None:
        attrs["headrace.outcome"] = record.outcome
    if (usage := record.usage) is not None:
        attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
        attrs["headrace.usage.cached_tokens"] = usage.cached_tokens
        attrs["headrace.cost_usd"] = usage.cost_usd
        attrs["headrace.deployment"] = usage.deployment
        attrs["headrace.model_version"] = usage.model_version
        if usage.prompt_id is not None and usage.prompt_version is not None:
            attrs["headrace.prompt_id"] = usage.prompt_id
            attrs["headrace.prompt_version"] = usage.prompt_version
    if record.ttft_s is not None:
        attrs["headrace.ttft_s"] = record.ttft_s
    if record.tier:
        attrs["headrace.tier"] = record.tier
    if record.fallback_model:
        attrs["headrace.fallback_model"] = record.fallback_model
    if record.injection_score is not None:
        attrs["headrace.injection_score"] = record.injection_score
    if record.injection:
        attrs["headrace.injection"] = record.injection
    for stage in ("input", "output"):
        verdicts = [v for v in record.safety if v.stage == stage]
        if verdicts:  # the strictest of the stage's checks, and every category it named
            worst = max(verdicts, key=lambda v: ("allow", "flag", "block").index(v.action))
            attrs[f"headrace.safety.{stage}.action"] = worst.action
            attrs[f"headrace.safety.{stage}.checks"] = len(verdicts)
            named = sorted({c for v in verdicts for c in v.categories})
            if named:
                attrs[f"headrace.safety.{stage}.categories"] = ",".join(named)
    return attrs
