"""`headrace audit list | export`: the audit log from the command line.

Also what the other commands that write to the database share: the CLI's actor
(`cli:<os user>`) and an open, migrated database.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from headrace import __version__
from headrace.config import Settings, load_settings
from headrace.control import audit as audit_service
from headrace.control import tenants
from headrace.errors import HeadraceError, InvalidRequestError
from headrace.storage.audit import Actor, Filter
from headrace.storage.database import Database

audit_app = typer.Typer(help="Read the audit log of admin actions.", no_args_is_help=True)
console = Console()
T = TypeVar("T")
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (default: headrace.yaml).")
]
ActorOption = Annotated[str | None, typer.Option(help="Only this actor (adm_..., cli:USER).")]
ActionOption = Annotated[str | None, typer.Option(help="Only this action, e.g. key.create.")]
TypeOption = Annotated[str | None, typer.Option(help="Only targets of this type.")]
TargetOption = Annotated[str | None, typer.Option(help="Only this target id.")]
SinceOption = Annotated[int | None, typer.Option(help="From this Unix time (inclusive).")]
UntilOption = Annotated[int | None, typer.Option(help="Before this Unix time.")]


def cli_actor() -> Actor:
    """Who runs this command, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    return Actor(f"cli:{user}", user_agent=f"headrace-cli/{__version__}")


def load(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except FileNotFoundError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


async def open_db(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    await db.migrate()
    return db


def run_on_db(
    settings: Settings, action: Callable[[Database], Awaitable[T]], *, refused_exit: int = 1
) -> T:
    """`action(db)` on the configured database; a refusal is printed and exits with
    `refused_exit`."""

    async def go() -> T:
        db = await open_db(settings)
        try:
            return await action(db)
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except HeadraceError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(refused_exit) from exc


def run_on_project(
    settings: Settings, action: Callable[[Database, str], Awaitable[T]], project: str
) -> T:
    """`action(db, project id)` for `project` (an id or a unique name); a refusal is printed
    and exits 1."""

    async def on_project(db: Database) -> T:
        return await action(db, await _project_id(db, project))

    return run_on_db(settings, on_project)


async def _project_id(db: Database, project: str) -> str:
    """`project` when it is an id; else the id of the one project with that name."""
    projects = await tenants.list_projects(db)
    if any(p.id == project for p in projects):
        return project
    named = [p.id for p in projects if p.name == project]
    return named[0] if len(named) == 1 else project  # unknown or ambiguous: 'no project'


def _where(
    actor: str | None,
    action: str | None,
    target_type: str | None,
    target_id: str | None,
    since: int | None,
    until: int | None,
    after: int | None = None,
) -> Filter:
    try:
        return audit_service.build_filter(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            since=since,
            until=until,
            after=after,
        )
    except InvalidRequestError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc


@audit_app.command("list")
def audit_list(
    config: ConfigOption = None,
    actor: ActorOption = None,
    action: ActionOption = None,
    target_type: TypeOption = None,
    target_id: TargetOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    after: Annotated[int | None, typer.Option(help="Events after this id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=audit_service.MAX_PAGE)] = 50,
) -> None:
    """Show audit events, oldest first."""
    where = _where(actor, action, target_type, target_id, since, until, after)
    settings = load(config)

    async def fetch() -> audit_service.Page:
        db = await open_db(settings)
        try:
            return await audit_service.page(db, where, limit=limit)
        finally:
            await db.close()

    page = asyncio.run(fetch())
    table = Table(title="Audit events")
    for column in ("id", "time (UTC)", "actor", "action", "target", "source"):
        table.add_column(column)
    for e in page.events:
        table.add_row(
            str(e.id),
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            f"{e.target_type}:{e.target_id}",
            e.source_ip or e.user_agent or "",
        )
    console.print(table)
    if page.has_more:
        console.print(f"more: --after {page.events[-1].id}")


@audit_app.command("export")
def audit_export(
    config: ConfigOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
    actor: ActorOption = None,
    action: ActionOption = None,
    target_type: TypeOption = None,
    target_id: TargetOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Write every matching event as JSON Lines, oldest first."""
    where = _where(actor, action, target_type, target_id, since, until)
    settings = load(config)

    async def export() -> int:
        db = await open_db(settings)
        count = 0
        sink = output.open("wb") if output is not None else sys.stdout.buffer
        try:
            async for line in audit_service.export(db, where):
                sink.write(line)
                count += 1
        finally:
            sink.flush()
            if output is not None:
                sink.close()
            await db.close()
        return count

    count = asyncio.run(export())
    if output is not None:
        err_console.print(f"{count} event(s) written to {output}")
