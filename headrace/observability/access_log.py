"""The access line, one JSON line per request, rendered directly rather than through
structlog's processor chain.

    line = AccessLine.for_settings(settings)   # None: the format or level wants structlog
    line.write(access_fields(record))

The line is what the chain in `logging.py` writes for `log.info("request", **fields)`:
the same keys in the same order, personal data redacted the same way, then `event`,
`level` and `timestamp`. The chain cost 60 us a line here (context merge, a PII scan of
every value, a timestamper, a renderer, a flushing print); this is a tenth of that, on a
path every request takes (docs/benchmarks.md, "Gateway proxying an instant upstream").
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

import orjson

from headrace.config import Settings
from headrace.observability.redaction import RedactPii

# Values the gateway itself writes: ids it generates (a scan would miss its cache every
# line), and names from its own code or configuration (a route template, an outcome, a
# deployment). Nothing personal can be in them. Every other string (the path, the model a
# client named, a prompt id, and any field added later) is scanned, mostly a cache hit.
_OURS = frozenset(
    {
        "request_id", "project_id", "org_id", "trace_id", "method", "route", "outcome",
        "rejection", "endpoint", "deployment", "model_version", "fallback_model", "tier",
    }
)  # fmt: skip


class AccessLine:
    """Lines written on the event loop are joined into one write at the end of the loop's
    turn (a write was a system call per request, 4% of a proxied request's CPU): the
    requests that finish together leave together, moments later. Off the loop, and at
    `flush`, they are written at once."""

    def __init__(self, *, redact: bool, stream: TextIO | None = None) -> None:
        self._pii = RedactPii() if redact else None
        self._stream = stream  # None: sys.stderr as it is at each write
        self._pending: list[str] = []
        self._second = -1  # the second `_prefix` is, formatted
        self._prefix = ""

    @classmethod
    def for_settings(cls, settings: Settings) -> AccessLine | None:
        """The direct line for JSON logs at `info` or below; None where structlog's
        console renderer or level filter decides (`log_format: console`, `warning`)."""
        level = logging.getLevelName(settings.log_level.upper())
        if settings.log_format != "json" or level > logging.INFO:
            return None
        return cls(redact=settings.privacy.redact_logs)

    def write(self, fields: dict[str, object]) -> None:
        if self._pii is not None:
            for key in fields.keys() - _OURS:
                value = fields[key]
                if isinstance(value, str):
                    fields[key] = self._pii.clean(value)
        fields["event"] = "request"
        fields["level"] = "info"
        fields["timestamp"] = self._timestamp()
        self._pending.append(orjson.dumps(fields).decode())
        if len(self._pending) > 1:
            return  # this turn's write is already scheduled
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
        else:
            loop.call_soon(self.flush)

    def _timestamp(self) -> str:
        """Now, as structlog's ISO timestamper writes it (`...T12:40:56.053334Z`); the
        date and time of day are formatted once a second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"

    def flush(self) -> None:
        """Write the lines pending, one per line, in one write."""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        stream = self._stream or sys.stderr
        stream.write("\n".join(lines) + "\n")
        stream.flush()
