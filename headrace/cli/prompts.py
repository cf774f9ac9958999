"""`headrace prompts create | list | show | promote`, `headrace retention`, `headrace purge`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from headrace.cli.audit import ConfigOption, load, run_on_db
from headrace.control import prompts as registry
from headrace.control import retention
from headrace.storage.database import Database

prompts_app = typer.Typer(
    help="The prompt registry: named, versioned prompts.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def _run(config: Path | None, work: Callable[[Database], Awaitable[T]]) -> T:
    """`work` on the configured database; a refusal is printed and exits with status 2."""
    return run_on_db(load(config), work, refused_exit=2)


def _text(text: str | None, file: Path | None) -> str:
    if (text is None) == (file is None):
        err_console.print("[red]Give the prompt as --text or --file (one of them).[/red]")
        raise typer.Exit(2)
    return text if text is not None else file.read_text()  # type: ignore[union-attr]


@prompts_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The prompt's name.")],
    text: Annotated[
        str | None, typer.Option(help="The prompt text ({{var}} placeholders).")
    ] = None,
    file: Annotated[Path | None, typer.Option(help="Read the prompt text from this file.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a prompt (version 1, current), or add the next version of an existing one
    (not current until promoted)."""
    body = _text(text, file)

    async def work(db: Database) -> registry.PromptVersion:
        existing = [p for p in await registry.list_prompts(db) if name in (p.id, p.name)]
        if existing:
            return await registry.add_version(db, name, body)
        return await registry.create(db, name, body)

    created = _run(config, work)
    state = (
        "current"
        if created.current
        else f"promote with: headrace prompts promote {name} {created.version}"
    )
    console.print(f"{created.name} ({created.prompt_id}) version {created.version}: {state}")


@prompts_app.command("list")
def list_prompts(config: ConfigOption = None) -> None:
    """List the prompts and their current versions."""
    table = Table(title="Prompts")
    for column in ("id", "name", "current", "latest"):
        table.add_column(column)
    for p in _run(config, registry.list_prompts):
        table.add_row(p.id, p.name, str(p.current_version), str(p.latest_version))
    console.print(table)


@prompts_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="The prompt's id or name.")],
    config: ConfigOption = None,
) -> None:
    """Every version of a prompt, the current one marked."""
    versions = _run(config, lambda db: registry.show(db, ref))
    table = Table(title=f"Prompt {ref}")
    for column in ("version", "current", "variables", "text"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v.version), "*" if v.current else "", ", ".join(v.variables), v.instructions
        )
    console.print(table)


@prompts_app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="The prompt's id or name.")],
    version: Annotated[int, typer.Argument(help="The version to make current.")],
    config: ConfigOption = None,
) -> None:
    """Make a version the current one (what references without a version get)."""
    promoted = _run(config, lambda db: registry.promote(db, ref, version))
    console.print(f"{promoted.name} now serves version {promoted.version}")


def set_retention(
    project: Annotated[str, typer.Argument(help="Project id.")],
    days: Annotated[
        int | None, typer.Argument(help="Days to keep content (0: store none; omit: forever).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set how long a project's conversations and responses are kept."""
    _run(config, lambda db: retention.set_retention(db, project, days))
    console.print(f"{project}: " + ("kept until deleted" if days is None else f"{days} day(s)"))


def purge(config: ConfigOption = None) -> None:
    """Delete the content every project's retention has expired, once, now."""
    done = _run(config, retention.purge)
    console.print(
        f"purged {done.conversations} conversation(s), {done.items} item(s), "
        f"{done.responses} response(s)"
    )
