"""The app factory: middleware, routers, error envelope and the lifespan that builds state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from headrace import __version__
from headrace.admission.abuse import AbuseGuard
from headrace.admission.admin_auth import AdminAuthenticator
from headrace.admission.auth import Authenticator
from headrace.admission.idempotency import build_idempotency
from headrace.admission.limiter import build_limiter
from headrace.admission.secrets import load_or_create_pepper
from headrace.admission.worker_auth import StaticKeyAuthenticator
from headrace.api.batch_calls import BatchCalls
from headrace.api.drain import Drain
from headrace.api.errors import install_error_handlers
from headrace.api.idempotency import IdempotencyMiddleware
from headrace.api.middleware import ReceiveMiddleware
from headrace.api.moderation import build_safety
from headrace.api.proxy_lane import ProxyLane
from headrace.api.routes import (
    abuse,
    admin,
    audit,
    batches,
    chat,
    completions,
    conversations,
    embeddings,
    files,
    health,
    metrics,
    models,
    moderations,
    organization,
    privacy_admin,
    prompts,
    responses,
    review,
    rollouts,
    safety_admin,
    stats,
    tokenize,
)
from headrace.api.state import AppState
from headrace.batch.worker import BatchWorker
from headrace.config import Settings
from headrace.control.prompts import PromptResolver
from headrace.control.retention import Purger
from headrace.metering.ledger import UsageLedger
from headrace.observability.telemetry import Telemetry
from headrace.routing.deployments import build_router
from headrace.routing.queue_poller import QueuePoller
from headrace.routing.registry import ModelRegistry, load_registry
from headrace.routing.rollouts import RolloutTable
from headrace.routing.upstream import UpstreamClient
from headrace.safety.privacy import PrivacyPolicies, PrivacyPolicy
from headrace.safety.stored_content import RedactingConversations, RedactingResponses
from headrace.storage.batches import Batches
from headrace.storage.database import Database
from headrace.storage.files import Files


class _Gateway(FastAPI):
    """FastAPI with the data plane's first stages (`stages`, outermost first) in front of
    its own middleware (error pages, its telemetry and body-limit wrappers) rather than
    inside it: a proxied request passes only through ours, five wrapper calls and their
    `send` wrappers less (about 2% of a proxied request's CPU in A/B runs). The receive
    stage answers an error escaping them as FastAPI's error stage would: the 500 envelope."""

    stages: list[Middleware]

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(getattr(self, "stages", [])):
            app = cls(app, *args, **kwargs)
        return app


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
    drain = Drain(settings.server.drain_timeout_s)

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
        auth = (
            StaticKeyAuthenticator(settings.worker.api_key)
            if settings.worker.enabled
            else Authenticator(db, pepper, ttl_s=settings.key_cache_ttl_s, clock=clock)
        )
        cipher = settings.content_cipher()
        router = build_router(settings.models, settings.routing)
        privacy = PrivacyPolicies(
            db,
            PrivacyPolicy.from_settings(settings.privacy),
            ttl_s=settings.privacy.policy_cache_ttl_s,
        )
        app.state.headrace = AppState(
            settings=settings,
            db=db,
            auth=auth,
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
            cipher=cipher,
            abuse=AbuseGuard(
                settings.abuse,
                db,
                gate=auth if isinstance(auth, Authenticator) else None,
                counter=observed.metrics,
                clock=clock,
            ),
            # PII modes store and mask: content is redacted before it is kept.
            conversations=RedactingConversations(db, cipher, privacy),
            responses=RedactingResponses(db, cipher, privacy),
            prompts=PromptResolver(db, ttl_s=settings.key_cache_ttl_s),
            files=Files(db, settings.files_dir, cipher),
            batches=Batches(db, cipher),
            privacy=privacy,
            safety=build_safety(settings, db, served),
            router=router,
            upstream=UpstreamClient(),
            rollouts=RolloutTable(db, ttl_s=settings.routing.rollout_cache_ttl_s),
            queue_poller=QueuePoller(
                (d for ds in router.deployments.values() for d in ds),
                interval_s=settings.routing.queue_poll_interval_s,
            ),
            drain=drain,
        )
        drain.bind(asyncio.get_running_loop())
        batch_worker = _batch_worker(app, app.state.headrace)
        purger = Purger(
            db, interval_s=settings.retention.purge_interval_s, files=app.state.headrace.files
        )
        if settings.retention.purge_enabled:
            purger.start()
        await app.state.headrace.ledger.recover()  # what a crash of this replica left open
        app.state.headrace.ledger.start()
        app.state.headrace.queue_poller.start()
        if batch_worker is not None:
            batch_worker.start()
        try:
            yield
        finally:
            if batch_worker is not None:
                await batch_worker.close()
            await purger.close()
            await app.state.headrace.abuse.close()
            await app.state.headrace.limiter.close()
            await app.state.headrace.ledger.close()
            await app.state.headrace.idempotency.close()
            await app.state.headrace.queue_poller.close()
            await app.state.headrace.upstream.close()
            if registry is None:
                served.close()
            await db.close()
            observed.close()

    app = _Gateway(
        title="Headrace",
        version=__version__,
        lifespan=lifespan,
        # Traces and metrics are ours (observability/); FastAPI's own OpenTelemetry would
        # add a second server span per request, and checking whether it is configured
        # (three global provider lookups) cost 3% of a proxied request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    routers = (health, stats, models, chat, completions, embeddings, tokenize, organization, admin)
    for module in (
        *routers,
        audit,
        review,
        abuse,
        moderations,
        safety_admin,
        responses,
        conversations,
        prompts,
        privacy_admin,
        rollouts,
        files,
        batches,
    ):
        app.include_router(module.router)
    if settings.metrics.enabled:
        app.include_router(metrics.router)
    app.stages = [
        Middleware(
            ReceiveMiddleware,
            max_body_bytes=settings.server.max_body_bytes,
            telemetry=observed,
            drain=drain,
            # Room for the multipart framing around the largest file.
            uploads={files.PATH: settings.files.max_bytes + 64 * 1024},
        ),
        # Inside the receive stage: its request id and timing headers are each response's own.
        Middleware(IdempotencyMiddleware),
        # Innermost: remote models' generation requests skip the routes (api/proxy_lane.py).
        Middleware(ProxyLane),
    ]
    app.state.drain = drain  # for the server: SIGTERM starts it (cli/serve.py)
    return app


def _batch_worker(app: FastAPI, state: AppState) -> BatchWorker | None:
    """The batch worker of this gateway, running lines through `app` itself; none in
    `headrace worker` mode or when `batch.worker_enabled` is off."""
    settings = state.settings
    if settings.worker.enabled or not settings.batch.worker_enabled:
        return None
    state.batch_worker = BatchWorker(
        state.batches,
        state.files,
        BatchCalls(app, state.db, ttl_s=settings.key_cache_ttl_s),
        worker_id=settings.effective_replica_id,
        settings=settings.batch,
    )
    return state.batch_worker
