"""Personal data never leaves in a log line or a span, whatever put it there."""

from __future__ import annotations

import io
import json

import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from headrace.config import TracingSettings
from headrace.observability.logging import log_processors
from headrace.observability.redaction import RedactingSpanExporter, RedactPii
from headrace.observability.tracing import tracer_provider

EMAIL = "carol@example.org"


def _logger(redact: bool = True) -> tuple[structlog.typing.FilteringBoundLogger, io.StringIO]:
    out = io.StringIO()
    return structlog.wrap_logger(
        structlog.PrintLogger(file=out), processors=log_processors(redact=redact)
    ), out


def test_every_string_of_a_line_is_redacted_however_deep() -> None:
    log, out = _logger()
    log.info(
        f"hello {EMAIL}",
        path=f"/v1/models/{EMAIL}",
        nested={"who": [EMAIL, ("tuple", "+44 20 7946 0958")], "n": 3},
        count=7,
    )
    line = json.loads(out.getvalue())
    assert line["event"] == "hello [EMAIL]"
    assert line["path"] == "/v1/models/[EMAIL]"
    assert line["nested"] == {"who": ["[EMAIL]", ["tuple", "[PHONE]"]], "n": 3}
    assert line["count"] == 7
    assert line["level"] == "info"
    assert "timestamp" in line


def test_tracebacks_are_formatted_then_redacted() -> None:
    log, out = _logger()
    try:
        raise ValueError(f"bad input from {EMAIL}")
    except ValueError:
        log.exception("failed")
    line = json.loads(out.getvalue())
    assert "ValueError: bad input from [EMAIL]" in line["exception"]
    assert EMAIL not in out.getvalue()


def test_redaction_can_be_turned_off() -> None:
    log, out = _logger(redact=False)
    log.info("x", who=EMAIL)
    assert EMAIL in out.getvalue()


def test_the_processor_cache_gives_the_same_answers() -> None:
    processor = RedactPii()
    for _ in range(3):
        assert processor.clean(EMAIL) == "[EMAIL]"
        assert processor.clean("plain") == "plain"
        long = processor.clean("x" * 100 + EMAIL)  # past the cache's length
        assert long.startswith("x" * 30)
        assert long.endswith("[EMAIL]")
        assert "@" not in long


def test_spans_reach_the_exporter_redacted() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(exported)))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span(f"GET /v1/models/{EMAIL}") as span:
        span.set_attribute("user", EMAIL)
        span.set_attribute("tags", [EMAIL, "ok"])
        span.set_attribute("tokens", 12)
        span.add_event("note", {"text": f"from {EMAIL}"})
        span.set_status(Status(StatusCode.ERROR, f"failed for {EMAIL}"))
    [done] = exported.get_finished_spans()
    assert done.name == "GET /v1/models/[EMAIL]"
    assert done.attributes == {"user": "[EMAIL]", "tags": ("[EMAIL]", "ok"), "tokens": 12}
    assert done.events[0].attributes == {"text": "from [EMAIL]"}
    assert done.status.description == "failed for [EMAIL]"
    assert done.context == span.get_span_context()


def test_the_apps_tracer_provider_redacts_by_default() -> None:
    exported = InMemorySpanExporter()
    provider = tracer_provider(TracingSettings(), exported)
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.set_attribute("who", EMAIL)
    assert exported.get_finished_spans()[0].attributes == {"who": "[EMAIL]"}
    plain = InMemorySpanExporter()
    unredacted = tracer_provider(TracingSettings(), plain, redact=False)
    assert unredacted is not None
    with unredacted.get_tracer("t").start_as_current_span("s") as span:
        span.set_attribute("who", EMAIL)
    assert plain.get_finished_spans()[0].attributes == {"who": EMAIL}
