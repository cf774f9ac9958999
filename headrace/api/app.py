"""The app factory: middleware, routers, error envelope and the lifespan that builds state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from headrace import __version__
from headrace.admission.auth import Authenticator
from headrace.admission.secrets import load_or_create_pepper
from headrace.api.errors import install_error_handlers
from headrace.api.middleware import ReceiveMiddleware
from headrace.api.routes import chat, embeddings, health, models
from headrace.api.state import AppState
from headrace.config import Settings
from headrace.routing.registry import ModelRegistry, load_registry
from headrace.storage.database import Database


def create_app(settings: Settings, registry: ModelRegistry | None = None) -> FastAPI:
    """An app serving `settings`; pass `registry` to reuse models already loaded."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url)
        await db.migrate()
        pepper = settings.key_pepper or load_or_create_pepper(settings.data_dir)
        served = (
            registry
            if registry is not None
            else await asyncio.to_thread(load_registry, settings.models)
        )
        app.state.headrace = AppState(
            settings=settings,
            db=db,
            auth=Authenticator(db, pepper, ttl_s=settings.key_cache_ttl_s),
            registry=served,
        )
        try:
            yield
        finally:
            if registry is None:
                served.close()
            await db.close()

    app = FastAPI(title="Headrace", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    for module in (health, models, chat, embeddings):
        app.include_router(module.router)
    app.add_middleware(ReceiveMiddleware, max_body_bytes=settings.server.max_body_bytes)
    return app
