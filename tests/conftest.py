"""Shared fixtures: a real app on a temp data dir, served over loopback HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from headrace.admission.limits import Limits
from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.cli.http_protocol import HttpToolsProtocol
from headrace.config import Settings
from headrace.control.keys import CreatedKey, create_key
from headrace.routing.registry import ModelRegistry, load_registry
from headrace.storage.database import Database
from headrace.storage.schema import UsageEventRow

POSTGRES_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
# One database per test session, created from the `test` database's server: two test runs
# at once (two developers, a run beside CI) never drop each other's tables.
POSTGRES_URL = f"{POSTGRES_SERVER}/test_headrace_{os.getpid()}"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


POSTGRES_UP = _reachable("127.0.0.1", 5432)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on SQLite and, when it is reachable, on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    if not POSTGRES_UP:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    request.getfixturevalue("postgres_database")
    asyncio.run(_reset_postgres())
    yield POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[None]:
    asyncio.run(_admin(f'CREATE DATABASE "{POSTGRES_URL.rsplit("/", 1)[1]}"'))
    yield
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{POSTGRES_URL.rsplit("/", 1)[1]}" WITH (FORCE)'))


async def _admin(statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{POSTGRES_SERVER}/test", isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


async def _reset_postgres() -> None:
    from sqlalchemy import text

    db = Database(POSTGRES_URL)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await db.close()


@pytest.fixture(scope="session")
def registry() -> Iterator[ModelRegistry]:
    """The bundled models, loaded once for the whole session."""
    reg = load_registry(Settings().models)
    yield reg
    reg.close()


@dataclass(frozen=True)
class Server:
    base_url: str
    api_key: str
    settings: Settings

    def client(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.api_key, max_retries=0, **kwargs
        )


def new_key(settings: Settings, name: str = "k", limits: Limits | None = None) -> CreatedKey:
    """A fresh API key in `settings`' database (migrated first), for synchronous tests."""

    async def create() -> CreatedKey:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url)
        await db.migrate()
        pepper = load_or_create_pepper(settings.data_dir)
        created = await create_key(db, pepper, name=name, limits=limits)
        await db.close()
        return created

    return asyncio.run(create())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, registry: ModelRegistry) -> Iterator[Server]:
    """A real Headrace on loopback with the bundled models and one API key."""
    data_dir = tmp_path_factory.mktemp("headrace")
    settings = Settings(data_dir=data_dir, server={"max_body_bytes": 64 * 1024})

    key = new_key(settings, name="tests").secret
    with serving(create_app(settings, registry)) as base_url:
        yield Server(base_url, key, settings)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve `app` on a free loopback port for the duration; yields its base URL."""
    port = _free_port()
    # uvicorn as `headrace serve` runs it: every test through HTTP covers its protocol.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=HttpToolsProtocol
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:  # start-up is milliseconds: models are already loaded
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return server.client()


def usage_rows(settings: Settings) -> list[UsageEventRow]:
    """The usage ledger of `settings`' database, as it is now."""

    async def read() -> list[UsageEventRow]:
        db = Database(settings.effective_database_url)
        async with db.session() as session:
            rows = list(await session.scalars(select(UsageEventRow)))
        await db.close()
        return rows

    return asyncio.run(read())
