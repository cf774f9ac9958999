"""`headrace batch-worker`: run batch lines in a process of its own, no HTTP listener.

It is a gateway without a socket: the same app, models and pipeline, whose only client is
its batch worker. Run as many as you like beside the gateways (set
`batch.worker_enabled: false` on gateways that should serve interactive traffic only);
they share the queue in the database.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Annotated

import typer

from headrace.api.app import create_app
from headrace.cli.serve import apply_runtime
from headrace.config import Settings, load_settings
from headrace.observability.logging import configure_logging


def batch_worker(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML config file (default: headrace.yaml)."),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            "--worker-id",
            help="Stable across restarts, unique among live workers: a restarted worker takes "
            "back the lines its previous run held. Default: <host>-batch.",
        ),
    ] = None,
) -> None:
    """Run batch jobs (`/v1/batches`) from the shared queue until stopped."""
    settings = load_settings(config)
    settings = settings.model_copy(
        update={
            "replica_id": worker_id or settings.replica_id or f"{socket.gethostname()}-batch",
            "batch": settings.batch.model_copy(update={"worker_enabled": True}),
        }
    )
    configure_logging(settings.log_level, settings.log_format, redact=settings.privacy.redact_logs)
    apply_runtime(settings)
    asyncio.run(run_batch_worker(settings))


async def run_batch_worker(settings: Settings) -> None:
    """Start the app's lifespan (and with it the batch worker) and wait for SIGINT/SIGTERM."""
    app = create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with app.router.lifespan_context(app):
        await stop.wait()
