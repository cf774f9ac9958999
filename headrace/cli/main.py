"""`headrace serve | keys | models | usage | audit | review | encryption | privacy | safety
| rollout | version`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from headrace import __version__
from headrace.admission.secrets import load_or_create_pepper
from headrace.cli import batch as batch_cli
from headrace.cli import prompts as prompts_cli
from headrace.cli.audit import audit_app, cli_actor
from headrace.cli.bench import bench_app
from headrace.cli.encryption import encryption_app
from headrace.cli.privacy import privacy_app
from headrace.cli.prompts import prompts_app
from headrace.cli.review import review_app
from headrace.cli.rollout import rollout_app
from headrace.cli.safety import safety_app
from headrace.config import Settings, load_settings
from headrace.control import keys as key_service
from headrace.storage.database import Database

app = typer.Typer(help="Headrace: a self-hosted OpenAI-compatible LLM API.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
models_app = typer.Typer(help="Inspect the models this gateway serves.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(prompts_app, name="prompts")
app.command("purge")(prompts_cli.purge)
app.command("batch-worker")(batch_cli.batch_worker)
app.command("retention")(prompts_cli.set_retention)
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")
app.add_typer(encryption_app, name="encryption")
app.add_typer(privacy_app, name="privacy")
app.add_typer(safety_app, name="safety")
app.add_typer(rollout_app, name="rollout")
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (default: headrace.yaml).")
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except FileNotFoundError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


async def _prepared_db(settings: Settings) -> tuple[Database, str]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    await db.migrate()
    return db, settings.key_pepper or load_or_create_pepper(settings.data_dir)


@app.command()
def version() -> None:
    """Print the Headrace version."""
    console.print(f"headrace {__version__}")


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
) -> None:
    """Serve the API (embedded defaults: SQLite, in-process limits, bundled models)."""
    from headrace.cli.serve import run_server

    settings = _settings(config)
    if host is not None:
        settings.server.host = host
    if port is not None:
        settings.server.port = port
    run_server(settings, console)


@app.command()
def worker(
    model: Annotated[Path, typer.Option(help="Hugging Face checkpoint directory.")],
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8001,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    name: Annotated[str | None, typer.Option(help="Served model name (default: dir name).")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Static bearer key callers must send (default: none).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    data_dir: Annotated[Path | None, typer.Option(help="State directory.")] = None,
) -> None:
    """Serve one engine over the OpenAI-compatible API plus /stats, for gateways."""
    from headrace.cli.worker import run_worker, worker_settings

    if not (model / "config.json").exists():
        err_console.print(f"[red]{model} has no config.json: not a checkpoint directory[/red]")
        raise typer.Exit(2)
    from pydantic import ValidationError

    try:
        settings = worker_settings(
            model,
            name=name,
            host=host,
            port=port,
            api_key=api_key,
            device=device,
            dtype=dtype,
            data_dir=data_dir,
        )
    except ValidationError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    run_worker(settings, console)


@keys_app.command("create")
def keys_create(
    config: ConfigOption = None,
    project: Annotated[str, typer.Option(help="Project the key belongs to.")] = "default",
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    print_key_only: Annotated[
        bool, typer.Option("--print-key-only", help="Print only the secret key (for scripts).")
    ] = False,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute for this key.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute (in + out).")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Requests in flight.")] = None,
    tpd: Annotated[int | None, typer.Option(help="Tokens per day (in + out).")] = None,
    spend_day: Annotated[float | None, typer.Option(help="Budget: USD per UTC day.")] = None,
    spend_month: Annotated[float | None, typer.Option(help="Budget: USD per month.")] = None,
) -> None:
    """Create an API key, optionally with its own limits; the secret is shown once."""
    from headrace.admission.limits import Limits
    from headrace.errors import InvalidRequestError

    settings = _settings(config)

    async def create() -> key_service.CreatedKey:
        db, pepper = await _prepared_db(settings)
        try:
            limits = Limits(rpm, tpm, max_concurrent, tpd, spend_day, spend_month)
            return await key_service.create_key(
                db, pepper, project=project, name=name, limits=limits, actor=cli_actor()
            )
        finally:
            await db.close()

    try:
        created = asyncio.run(create())
    except InvalidRequestError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    if print_key_only:
        print(created.secret)
        return
    table = Table(title="New API key (shown once: store it now)")
    for column in ("id", "project", "name", "key"):
        table.add_column(column)
    table.add_row(created.id, created.project, created.name, created.secret)
    console.print(table)


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List API keys (secrets are never shown again)."""
    settings = _settings(config)

    async def fetch() -> list[key_service.KeyInfo]:
        db, _ = await _prepared_db(settings)
        try:
            return await key_service.list_keys(db)
        finally:
            await db.close()

    table = Table(title="API keys")
    for column in ("id", "project", "name", "key", "created", "status"):
        table.add_column(column)
    for k in asyncio.run(fetch()):
        status = "[red]revoked[/red]" if k.revoked_at else "[green]active[/green]"
        table.add_row(
            k.id, k.project, k.name, k.redacted, k.created_at.strftime("%Y-%m-%d %H:%M"), status
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOption = None) -> None:
    """Revoke an API key by id; every replica refuses it within a second."""
    from headrace.errors import NotFoundError

    settings = _settings(config)

    async def revoke() -> None:
        db, _ = await _prepared_db(settings)
        try:
            await key_service.revoke_key(db, key_id, actor=cli_actor())
        finally:
            await db.close()

    try:
        asyncio.run(revoke())
    except NotFoundError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"revoked {key_id}")


@app.command()
def usage(
    config: ConfigOption = None,
    days: Annotated[int, typer.Option(min=1, max=31, help="How far back to look.")] = 7,
    bucket: Annotated[str, typer.Option(help="Bucket width: 1d or 1h.")] = "1d",
    group_by: Annotated[
        list[str] | None, typer.Option(help="Split rows by model, project or key (repeatable).")
    ] = None,
) -> None:
    """Show token usage and cost from the usage ledger."""
    from headrace.cli.usage import GROUPS, show_usage

    groups = group_by or []
    bad = [g for g in groups if g not in GROUPS] + ([bucket] if bucket not in ("1d", "1h") else [])
    if bad:
        err_console.print(f"[red]unknown value(s): {', '.join(bad)}[/red]")
        raise typer.Exit(2)
    show_usage(_settings(config), console, days=days, bucket=bucket, group_by=groups)


@models_app.command("list")
def models_list(config: ConfigOption = None) -> None:
    """List the configured models (without loading their weights)."""
    from headrace.routing.registry import checkpoint_context_window

    settings = _settings(config)
    table = Table(title="Models")
    for column in ("name", "kind", "context window", "path"):
        table.add_column(column)
    for m in settings.models:
        if m.path is None:
            where = ", ".join(f"{d.name} ({d.url})" for d in m.deployments)
            table.add_row(m.name, m.kind, str(m.context_window or ""), where)
            continue
        path = m.resolved_path()
        window = checkpoint_context_window(path) if (path / "config.json").exists() else 0
        if m.context_window is not None:
            window = min(window, m.context_window)
        table.add_row(m.name, m.kind, str(window), str(path))
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
