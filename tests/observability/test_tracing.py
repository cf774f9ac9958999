"""One streamed request gives one trace: a root span and a span per lifecycle stage."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from headrace.config import TracingSettings
from headrace.observability.request import RequestRecord
from headrace.observability.tracing import record_trace, tracer_provider
from tests.observability.conftest import ASK, MODEL, Observed

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
STAGES = (
    "receive",
    "auth",
    "validate",
    "route",
    "check_input",  # privacy: injection scoring, PII masking
    "build_context",
    "admission",
    "moderate_input",  # safety in
    "queue",
    "decode",
    "stream",
    "check_output",  # safety out, beside decode
    "account",
)


def _trace(spans: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id
    ]


def test_a_streamed_request_is_one_trace_with_every_stage(observed: Observed) -> None:
    stream = observed.client().chat.completions.create(
        model=MODEL,
        messages=ASK,
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    trace_id = int(TRACE_ID, 16)
    observed.wait_for(lambda: len(_trace(observed.spans, trace_id)) > len(STAGES))
    spans = _trace(observed.spans, trace_id)
    (root,) = [s for s in spans if s.kind == SpanKind.SERVER]
    assert root.name == "POST /v1/chat/completions"
    assert root.parent is not None
    assert root.parent.span_id == int(PARENT_ID, 16)
    attrs = root.attributes or {}
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["http.response.status_code"] == 200
    assert attrs["headrace.outcome"] == "ok"
    assert attrs["headrace.cost_usd"] > 0
    assert attrs["headrace.deployment"] == "local"
    children = {s.name: s for s in spans if s is not root}
    assert set(STAGES) <= set(children)
    assert root.start_time is not None
    assert root.end_time is not None
    for child in children.values():
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.start_time is not None
        assert child.end_time is not None
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time


def test_tracing_is_off_by_default() -> None:
    assert tracer_provider(TracingSettings()) is None


def test_a_request_without_traceparent_starts_a_new_trace() -> None:
    spans = InMemorySpanExporter()
    provider = tracer_provider(TracingSettings(), spans)
    assert provider is not None
    record = RequestRecord("req-1", method="GET", path="/v1/models", route="/v1/models")
    record.mark("receive")
    record.end(200)
    trace_id = record_trace(provider.get_tracer("test"), record)
    root, receive = sorted(spans.get_finished_spans(), key=lambda s: s.name)
    assert root.name == "GET /v1/models"
    assert root.parent is None
    assert receive.name == "receive"
    assert f"{root.context.trace_id:032x}" == trace_id


def test_the_otlp_and_console_exporters_build() -> None:
    for settings in (
        TracingSettings(exporter="otlp", otlp_endpoint="http://127.0.0.1:1/v1/traces"),
        TracingSettings(exporter="console"),
    ):
        provider = tracer_provider(settings)
        assert provider is not None
        assert provider.resource.attributes["service.name"] == "headrace"
        provider.shutdown()  # nothing was sent: returns at once
