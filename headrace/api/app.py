"""The app factory: middleware, routers, error envelope and the lifespan that builds state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from headrace import __version__
from headrace.admission.admin_auth import AdminAuthenticator
from headrace.admission.auth import Authenticator
from headrace.admission.idempotency import build_idempotency
from headrace.admission.limiter import build_limiter
from headrace.admission.secrets import load_or_create_pepper
from headrace.admission.worker_auth import StaticKeyAuthenticator
from headrace.api.errors import install_error_handlers
from headrace.api.idempotency import IdempotencyMiddleware
from headrace.api.middleware import ReceiveMiddleware
from headrace.api.routes import (
    admin,
    chat,
    completions,
    embeddings,
    health,
    metrics,
    models,
    organization,
    stats,
    tokenize,
)
from headrace.api.state import AppState
from headrace.config import Settings
from headrace.metering.ledger import UsageLedger
from headrace.observability.telemetry import Telemetry
from headrace.routing.registry import ModelRegistry, load_registry
from headrace.storage.database import Database


def create_app(
    settings: Settings,
    registry: ModelRegistry | None = None,
    *,
    clock: Callable[[], float] = time.time,
    telemetry: Telemetry | None = None,
) -> FastAPI:
    """An app serving `settings`; pass `registry` to reuse models already loaded, `clock`
    to drive the rate limits' time in tests, `telemetry` to read its metrics and spans."""
    observed = telemetry or Telemetry.from_settings(settings)

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
            auth=(
                StaticKeyAuthenticator(settings.worker.api_key)
                if settings.worker.enabled
                else Authenticator(db, pepper, ttl_s=settings.key_cache_ttl_s, clock=clock)
            ),
            registry=served,
            limiter=build_limiter(settings, db, clock=clock),
            ledger=UsageLedger(
                db,
                replica=settings.effective_replica_id,
                stale_after_s=settings.limits.lease_ttl_s,
            ),
            admin_auth=AdminAuthenticator(db, pepper),
            idempotency=build_idempotency(settings),
            telemetry=observed,
        )
        await app.state.headrace.ledger.recover()  # what a crash of this replica left open
        app.state.headrace.ledger.start()
        try:
            yield
        finally:
            await app.state.headrace.limiter.close()
            await app.state.headrace.ledger.close()
            await app.state.headrace.idempotency.close()
            if registry is None:
                served.close()
            await db.close()
            observed.close()

    app = FastAPI(title="Headrace", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    routers = (health, stats, models, chat, completions, embeddings, tokenize, organization, admin)
    for module in routers:
        app.include_router(module.router)
    if settings.metrics.enabled:
        app.include_router(metrics.router)
    # Inside the receive stage: its request id and timing headers are each response's own.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(
        ReceiveMiddleware, max_body_bytes=settings.server.max_body_bytes, telemetry=observed
    )
    return app
