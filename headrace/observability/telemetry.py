"""The app's telemetry: a finished request's record becomes metrics, a trace and a log line.

telemetry = Telemetry.from_settings(settings)   # one per app, built by `create_app`
telemetry.observe(record)                       # the receive stage, as a request ends
"""

from __future__ import annotations

import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from headrace.config import Settings
from headrace.observability.access_log import AccessLine
from headrace.observability.logging import access_fields, get_logger
from headrace.observability.metrics import Metrics
from headrace.observability.request import RequestRecord
from headrace.observability.tracing import PlannedIds, record_trace, tracer_provider


class Telemetry:
    def __init__(
        self,
        metrics: Metrics,
        provider: TracerProvider | None = None,
        log: structlog.stdlib.BoundLogger | None = None,
        access: AccessLine | None = None,
    ) -> None:
        self.metrics = metrics
        self.log = log if log is not None else get_logger("headrace.access")
        self.access = access  # the access line, when not written through `log`
        self.provider = provider
        self.tracer = provider.get_tracer("headrace") if provider is not None else None
        ids = provider.id_generator if provider is not None else None
        self._ids = ids if isinstance(ids, PlannedIds) else None

    @classmethod
    def from_settings(
        cls, settings: Settings, span_exporter: SpanExporter | None = None
    ) -> Telemetry:
        """What `settings` ask for; `span_exporter` (tests) receives every span."""
        return cls(
            Metrics(settings.metrics.max_projects),
            tracer_provider(settings.tracing, span_exporter, redact=settings.privacy.redact_logs),
            access=AccessLine.for_settings(settings),
        )

    def observe(self, record: RequestRecord) -> None:
        """One finished request into every view of it. Never raises: telemetry must not
        turn a served request into an error."""
        trace_id = ""
        try:
            if self.tracer is not None:
                trace_id = record_trace(self.tracer, record, self._ids)
            self.metrics.observe(record)
        except Exception:
            self.log.exception("telemetry_failed", request_id=record.request_id)
        fields = access_fields(record, trace_id)
        if self.access is not None:
            self.access.write(fields)
        else:
            self.log.info("request", **fields)

    def close(self) -> None:
        """Write access lines still pending; flush spans still batched for the exporter."""
        if self.access is not None:
            self.access.flush()
        if self.provider is not None:
            self.provider.shutdown()
