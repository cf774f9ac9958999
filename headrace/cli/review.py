"""`headrace review list | approve | reject`: the human review queue."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from headrace.cli.audit import ConfigOption, cli_actor, console, err_console, load, open_db
from headrace.control import review as review_service
from headrace.errors import HeadraceError
from headrace.storage.review import Verdict

review_app = typer.Typer(help="Review flagged content.", no_args_is_help=True)
T = TypeVar("T")
NoteOption = Annotated[str | None, typer.Option(help="Why: kept with the verdict.")]


@review_app.command("list")
def review_list(
    config: ConfigOption = None,
    status: Annotated[str, typer.Option(help="pending, approved, rejected or all.")] = "pending",
    project: Annotated[str | None, typer.Option(help="Only this project id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=review_service.MAX_PAGE)] = 50,
    show_content: Annotated[bool, typer.Option(help="Print each item's content.")] = False,
) -> None:
    """List review items, oldest first."""
    settings = load(config)

    async def fetch() -> tuple[list[review_service.ReviewView], bool]:
        db = await open_db(settings)
        try:
            return await review_service.list_items(
                db,
                settings.content_cipher(),
                status=None if status == "all" else status,
                project_id=project,
                limit=limit,
            )
        finally:
            await db.close()

    items, more = _run(fetch())
    table = Table(title=f"Review items ({status})")
    columns = ["id", "created (UTC)", "project", "stage", "categories", "status", "reviewer"]
    for column in columns + (["content"] if show_content else []):
        table.add_column(column)
    for i in items:
        row = [
            i.id,
            i.created_at.strftime("%Y-%m-%d %H:%M"),
            i.project_id,
            i.stage,
            ", ".join(i.categories),
            i.status,
            i.reviewer or "",
        ]
        table.add_row(*row, *([i.content or ""] if show_content else []))
    console.print(table)
    if more:
        console.print(f"more than {limit}: raise --limit")


@review_app.command("approve")
def review_approve(item_id: str, config: ConfigOption = None, note: NoteOption = None) -> None:
    """Approve a pending item: the flag was a false alarm."""
    _decide(item_id, "approved", note, config)


@review_app.command("reject")
def review_reject(item_id: str, config: ConfigOption = None, note: NoteOption = None) -> None:
    """Reject a pending item: the flag was right."""
    _decide(item_id, "rejected", note, config)


def _decide(item_id: str, verdict: Verdict, note: str | None, config: ConfigOption) -> None:
    settings = load(config)

    async def decide() -> review_service.ReviewView:
        db = await open_db(settings)
        try:
            return await review_service.decide(
                db, settings.content_cipher(), item_id, verdict, note=note, actor=cli_actor()
            )
        finally:
            await db.close()

    decided = _run(decide())
    console.print(f"{decided.id}: {decided.status}")


def _run(work: Coroutine[object, object, T]) -> T:
    try:
        return asyncio.run(work)
    except HeadraceError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1 if exc.status_code == 404 else 2) from exc
