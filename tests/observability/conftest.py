"""An app on a fake engine whose telemetry the tests can read: its metrics registry, the
spans it exported and the access lines it logged."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from headrace.admission.limits import Limits
from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import create_key
from headrace.observability.metrics import Metrics
from headrace.observability.telemetry import Telemetry
from headrace.observability.tracing import tracer_provider
from headrace.storage.database import Database
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"
ASK = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class Observed:
    base_url: str
    settings: Settings
    engine: FakeEngine
    telemetry: Telemetry
    spans: InMemorySpanExporter
    log: io.StringIO

    def key(self, limits: Limits | None = None, project: str = "default") -> str:
        return asyncio.run(_key(self.settings, limits, project))

    def client(self, limits: Limits | None = None, project: str = "default") -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.key(limits, project), max_retries=0
        )

    def sample(self, name: str, **labels: str) -> float:
        value = self.telemetry.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def total(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels`."""
        return sum(
            s.value
            for family in self.telemetry.metrics.registry.collect()
            for s in family.samples
            if s.name == name and labels.items() <= s.labels.items()
        )

    def access_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line]

    def wait_for(self, done: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Telemetry is written once the response has ended, just after the client saw it."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError("telemetry did not arrive in time")
            time.sleep(0.01)


async def _key(settings: Settings, limits: Limits | None, project: str) -> str:
    db = Database(settings.effective_database_url)
    await db.migrate()
    created = await create_key(
        db, load_or_create_pepper(settings.data_dir), project=project, name="obs", limits=limits
    )
    await db.close()
    return created.secret


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("observed"))
    spans = InMemorySpanExporter()
    log = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(file=log),
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
    )
    telemetry = Telemetry(Metrics(), tracer_provider(settings.tracing, spans), log=logger)
    engine = FakeEngine(reply_tokens=3)
    app = create_app(settings, fake_registry(engine, output_price_per_1m=2.0), telemetry=telemetry)
    with serving(app) as base_url:
        yield Observed(base_url, settings, engine, telemetry, spans, log)
