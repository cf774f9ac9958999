"""`headrace worker`: one engine over the OpenAI-compatible HTTP API, plus `/stats`.

Gateways reach a worker exactly as they reach vLLM: `/v1/chat/completions`,
`/v1/completions`, `/v1/models`, with an optional static bearer key (`--api-key`), and
`/stats` for load-aware routing.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from headrace.config import ModelSettings, Settings, WorkerSettings


def worker_settings(
    model: Path,
    *,
    name: str | None,
    host: str,
    port: int,
    api_key: str | None,
    device: str,
    dtype: str,
    data_dir: Path | None,
) -> Settings:
    """Settings for a worker serving the one checkpoint at `model`."""
    served = ModelSettings(
        name=name or model.resolve().name,
        kind="chat",
        path=str(model.resolve()),
        device=device,
        dtype=dtype,
    )
    return Settings(
        data_dir=data_dir or Path(".headrace") / f"worker-{port}",
        server={"host": host, "port": port},
        models=[served],
        worker=WorkerSettings(enabled=True, api_key=api_key),
    )


def run_worker(settings: Settings, console: Console) -> None:
    from headrace.cli.serve import apply_runtime, load_models_with_progress, serve_app
    from headrace.observability.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format, redact=settings.privacy.redact_logs)
    apply_runtime(settings)
    registry = load_models_with_progress(settings.models, console)
    name = settings.models[0].name
    url = f"http://{settings.server.host}:{settings.server.port}"
    console.print(f"[bold green]worker: {name} at {url}/v1[/bold green], load at {url}/stats")
    serve_app(settings, registry)
