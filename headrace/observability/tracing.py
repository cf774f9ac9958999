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
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from headrace import __version__
from headrace.config import TracingSettings
from headrace.observability.request import RequestRecord

_PROPAGATOR = TraceContextTextMapPropagator()


def tracer_provider(
    settings: TracingSettings, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """The provider `settings` ask for, or None when tracing is off; `exporter` (tests: an
    in-memory one) replaces the configured exporter and is flushed span by span."""
    if exporter is None and settings.exporter == "none":
        return None
    resource = Resource.create(
        {"service.name": settings.service_name, "service.version": __version__}
    )
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif settings.exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        # Imported here: the OTLP exporter pulls in protobuf, which only its users need.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Batched: a slow collector must never hold up a request.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
    return provider


def record_trace(tracer: Tracer, record: RequestRecord) -> str:
    """Write `record` as a trace; returns its trace id (hex) for the access log."""
    parent = _PROPAGATOR.extract({"traceparent": record.traceparent})
    end_s = record.ended_s if record.ended_s is not None else record.now_s()
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
    if record.ttft_s is not None:
        attrs["headrace.ttft_s"] = record.ttft_s
    return attrs
