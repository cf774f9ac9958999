"""Personal data never leaves the process in a log line or a span.

`RedactPii` is a structlog processor: every string in every log line (nested ones too,
tracebacks included) goes through `safety/pii.py`'s `redact`. `RedactingSpanExporter` does
the same to span names, attributes, events and status descriptions before any exporter sees
them. Both are on by default (`privacy.redact_logs`); whatever a project's PII mode is,
logs and traces are redacted.

Log lines repeat most of their strings (event names, routes, models, outcomes), so short
strings' answers are kept in a small per-processor cache.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.util.types import AttributeValue

from headrace.safety.pii import redact

_CACHED_MAX_CHARS = 64
_CACHE_SIZE = 2048


class RedactPii:
    """structlog processor: personal data in any string value becomes `[KIND]`."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(
        self, logger: object, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            event_dict[key] = self.clean(value)
        return event_dict

    def clean(self, value: Any) -> Any:
        """`value` with its strings redacted, however deep in dicts, lists and tuples."""
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict):
            return {k: self.clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.clean(v) for v in value)
        return value

    def _text(self, text: str) -> str:
        if len(text) > _CACHED_MAX_CHARS:
            return redact(text)
        hit = self._cache.get(text)
        if hit is None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()  # cheaper than LRU bookkeeping; refills in a few lines
            hit = self._cache[text] = redact(text)
        return hit


class RedactingSpanExporter(SpanExporter):
    """Hands `inner` copies of the spans with their personal data redacted."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([redact_span(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def redact_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of `span` whose strings carry no personal data."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description))
    return ReadableSpan(
        name=redact(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_attributes(span.attributes),
        events=[
            Event(e.name, _attributes(e.attributes), timestamp=e.timestamp) for e in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _attributes(attrs: Mapping[str, AttributeValue] | None) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, value in (attrs or {}).items():
        if isinstance(value, str):
            out[key] = redact(value)
        elif isinstance(value, Sequence) and value and isinstance(value[0], str):
            out[key] = tuple(redact(str(v)) for v in value)
        else:
            out[key] = value
    return out
