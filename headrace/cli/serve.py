"""`headrace serve`: prepare the store, load models with progress, print how to call us, serve."""

from __future__ import annotations

import asyncio
import gc
import socket
from types import FrameType

import uvicorn
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from headrace.admission.secrets import load_or_create_pepper
from headrace.api.app import create_app
from headrace.api.drain import Drain
from headrace.cli.http_protocol import HttpToolsProtocol
from headrace.config import ModelSettings, Settings
from headrace.control.keys import FirstStart, bootstrap
from headrace.observability.logging import configure_logging
from headrace.routing.registry import ModelRegistry, load_model
from headrace.storage.database import Database


async def _first_start(settings: Settings) -> FirstStart | None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    try:
        await db.migrate()
        pepper = settings.key_pepper or load_or_create_pepper(settings.data_dir)
        return await bootstrap(db, pepper)
    finally:
        await db.close()


def load_models_with_progress(models: list[ModelSettings], console: Console) -> ModelRegistry:
    loaded = []
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("loading models", total=len(models))
        for settings in models:
            progress.update(task, description=f"loading {settings.name}")
            loaded.append(load_model(settings))
            progress.advance(task)
    return ModelRegistry(loaded)


def _banner(settings: Settings, registry: ModelRegistry, first: FirstStart | None) -> str:
    url = _url(settings)
    lines = [
        f"[bold green]Headrace is serving at {url}/v1[/bold green]",
        "models: " + ", ".join(m.settings.name for m in registry.all()),
    ]
    if first:
        lines += [
            "",
            "[bold yellow]First start: these secrets are shown once, store them now.[/bold yellow]",
            f"admin credential: {first.admin_secret}",
            f"API key:          {first.api_key.secret}",
        ]
    else:
        lines += ["", "Create a key with: .venv/bin/headrace keys create"]
    return "\n".join(lines)


def _snippets(settings: Settings, registry: ModelRegistry, first: FirstStart | None) -> str:
    """Plain text, never wrapped, so that it pastes as it is."""
    url = _url(settings)
    chat = next((m.settings.name for m in registry.all() if m.settings.kind == "chat"), "")
    key = first.api_key.secret if first else "$HEADRACE_API_KEY"
    body = f'{{"model": "{chat}", "messages": [{{"role": "user", "content": "What is 2 + 3?"}}]}}'
    return "\n".join(
        [
            "# curl",
            f"curl {url}/v1/chat/completions -H 'Authorization: Bearer {key}' \\",
            f"  -H 'Content-Type: application/json' -d '{body}'",
            "",
            "# python (pip install openai)",
            "from openai import OpenAI",
            f'client = OpenAI(base_url="{url}/v1", api_key="{key}")',
            "r = client.chat.completions.create(",
            f'    model="{chat}",',
            '    messages=[{"role": "user", "content": "What is the capital of France?"}],',
            ")",
            "print(r.choices[0].message.content)",
        ]
    )


def _url(settings: Settings) -> str:
    return settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"


def serve_app(settings: Settings, registry: ModelRegistry) -> None:
    """Run the app on uvicorn (uvloop, httptools) until interrupted."""
    app = create_app(settings, registry)
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http=HttpToolsProtocol,  # uvicorn's, one write per turn of the loop
        log_level="warning",
        access_log=False,  # ours is the one access line per request
    )
    # uvicorn waits this long for connections: the drain's deadline, then a margin for the
    # streams it ended to flush their error event.
    config.timeout_graceful_shutdown = int(settings.server.drain_timeout_s) + 5
    try:
        _DrainingServer(config, app.state.drain).run()
    finally:
        registry.close()


YOUNG_COLLECTION_EVERY = 20_000


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, that also starts the app's drain on SIGTERM/SIGINT."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self._drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._drain.request()
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Everything built so far (modules, models, tokenizers, caches: a few hundred
        # thousand objects) lives as long as the process: out of the collector's sight, a
        # full collection no longer walks it. Measured in front of an instant upstream:
        # 15% less CPU per request, p99 from about 370 to 150 ms (docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        # The requests in flight allocate tens of thousands of short-lived containers; at
        # CPython's default (a young collection every 700 allocations) the collector walked
        # them several times per request and promoted many to older generations. Every
        # 20,000: 4-5% less CPU per proxied request in same-session A/B runs, a young
        # collection of ~1 ms (docs/benchmarks.md).
        gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 20)


def apply_runtime(settings: Settings) -> None:
    """Process-wide inference settings, applied once before any model loads."""
    if settings.torch_threads is not None:
        import torch

        torch.set_num_threads(settings.torch_threads)


def run_server(settings: Settings, console: Console) -> None:
    configure_logging(settings.log_level, settings.log_format, redact=settings.privacy.redact_logs)
    apply_runtime(settings)
    first = asyncio.run(_first_start(settings))
    registry = load_models_with_progress(settings.models, console)
    console.print(Panel(_banner(settings, registry, first), title="headrace", expand=False))
    print(_snippets(settings, registry, first), flush=True)
    serve_app(settings, registry)
