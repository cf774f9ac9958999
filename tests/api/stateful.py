"""A gateway for the stateful APIs (responses, conversations, prompts): the fake engine,
an admin key, and API keys of two projects, A and B, for the isolation tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.config import Settings
from headrace.control.keys import bootstrap
from headrace.engine.interface import Finished, GenerationEvent, GenerationRequest, TextDelta
from headrace.storage.database import Database
from tests.conftest import serving
from tests.fakes import FakeEngine, fake_registry

MODEL = "headrace-tiny-chat"


class ScriptedEngine(FakeEngine):
    """The fake engine, or, while `reply` is set, that text in pieces of 4 characters,
    one token each; it records the prompts it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.reply: str | None = None
        self.prompts: list[tuple[int, ...]] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.prompts.append(request.prompt_token_ids)
        if self.reply is None:
            async for ev in super().generate(request):
                yield ev
            return
        pieces = [self.reply[i : i + 4] for i in range(0, len(self.reply), 4)]
        pieces = pieces[: request.params.max_tokens]
        for i, piece in enumerate(pieces):
            yield TextDelta(text=piece, token_ids=(100 + i,))
        reason = "length" if len(pieces) == request.params.max_tokens else "stop"
        yield Finished(reason, len(request.prompt_token_ids), len(pieces))


@dataclass(frozen=True)
class Gateway:
    base_url: str
    admin: httpx.Client
    key_a: str
    key_b: str
    project_b: str
    engine: ScriptedEngine
    data_dir: Path
    database_url: str

    def sdk(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=key or self.key_a, max_retries=0
        )

    def http(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {key or self.key_a}"}
        )

    def new_project_key(self) -> tuple[str, str]:
        """A fresh project and an API key of it."""
        org = _ok(self.admin.post("/organizations", json={"name": f"o{time.monotonic_ns()}"}))
        project = _ok(self.admin.post("/projects", json={"org_id": org["id"], "name": "p"}))
        key = _ok(self.admin.post("/keys", json={"project_id": project["id"], "name": "k"}))
        return str(project["id"]), str(key["value"])


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def start_gateway(data_dir: Path, *, reply_tokens: int = 3, **settings: Any) -> Iterator[Gateway]:
    """Serve a gateway on `data_dir` (no key or limit caches) for the duration."""
    config = Settings(data_dir=data_dir, key_cache_ttl_s=0, limits={"cache_ttl_s": 0}, **settings)

    async def first() -> tuple[str, str]:
        db = Database(config.effective_database_url)
        await db.migrate()
        start = await bootstrap(db, load_or_create_pepper(config.data_dir))
        await db.close()
        assert start is not None
        return start.admin_secret, start.api_key.secret

    admin_key, key_a = asyncio.run(first())
    engine = ScriptedEngine()
    engine.reply_tokens = reply_tokens
    with serving(create_app(config, fake_registry(engine))) as base_url:
        admin = httpx.Client(
            base_url=f"{base_url}/admin/v1", headers={"Authorization": f"Bearer {admin_key}"}
        )
        gateway = Gateway(
            base_url, admin, key_a, "", "", engine, data_dir, config.effective_database_url
        )
        project_b, key_b = gateway.new_project_key()
        yield Gateway(
            base_url,
            admin,
            key_a,
            key_b,
            project_b,
            engine,
            data_dir,
            config.effective_database_url,
        )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from start_gateway(tmp_path_factory.mktemp("stateful"))
