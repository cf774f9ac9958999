"""A gateway with a fake engine and its batch worker, served on loopback, for batch tests.

`settle()` waits (no sleeping) until the worker finds nothing left to do: the worker runs in
the server's event loop, so the wait is handed to that loop.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from fastapi import FastAPI

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.batch.worker import BatchWorker
from headrace.config import Settings
from headrace.control.keys import create_key
from headrace.storage.database import Database
from tests.conftest import serving
from tests.fakes import FAKE_MODEL, FakeEngine, fake_registry


@dataclass
class BatchServer:
    app: FastAPI
    base_url: str
    keys: dict[str, str]  # project name -> a key of it
    settings: Settings

    def client(self, project: str = "default") -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.keys[project], max_retries=0
        )

    @property
    def worker(self) -> BatchWorker:
        worker = self.app.state.headrace.batch_worker
        assert isinstance(worker, BatchWorker)
        return worker

    def settle(self, timeout_s: float = 30.0) -> None:
        worker = self.worker
        assert worker.loop is not None
        asyncio.run_coroutine_threadsafe(worker.until_idle(), worker.loop).result(timeout_s)


def make_keys(settings: Settings, projects: tuple[str, ...]) -> dict[str, str]:
    async def create() -> dict[str, str]:
        db = Database(settings.effective_database_url)
        await db.migrate()
        pepper = load_or_create_pepper(settings.data_dir)
        keys = {p: (await create_key(db, pepper, project=p, name="k")).secret for p in projects}
        await db.close()
        return keys

    return asyncio.run(create())


@contextmanager
def batch_server(
    data_dir: Path, engine: FakeEngine | None = None, **settings: Any
) -> Iterator[BatchServer]:
    config = Settings(data_dir=data_dir, log_level="warning", **settings)
    keys = make_keys(config, ("default", "other"))
    app = create_app(config, fake_registry(engine or FakeEngine()))
    with serving(app) as base_url:
        yield BatchServer(app, base_url, keys, config)


def jsonl(lines: list[dict[str, Any]]) -> io.BytesIO:
    data = io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())
    data.name = "input.jsonl"
    return data


def chat_line(custom_id: str, text: str = "Hello", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": FAKE_MODEL,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 3,
        }
        | body,
    }
