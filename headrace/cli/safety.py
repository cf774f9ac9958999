"""`headrace safety policy show | set | reset`: a project's moderation policy."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from headrace.cli.audit import ConfigOption, cli_actor, console, err_console, load, run_on_project
from headrace.control import safety as safety_service
from headrace.safety.moderation import CATEGORIES, MODEL_DIR, Head
from headrace.safety.policy import categories_to_dict, policy_from_dict
from headrace.storage.database import Database

safety_app = typer.Typer(help="Moderation: each project's safety policy.", no_args_is_help=True)
policy_app = typer.Typer(help="A project's safety policy.", no_args_is_help=True)
safety_app.add_typer(policy_app, name="policy")
ProjectArgument = Annotated[str, typer.Argument(help="Project id, or a unique project name.")]
Assignments = Annotated[
    list[str] | None,
    typer.Option(help="CATEGORY=VALUE, repeatable; CATEGORY `all` sets every category."),
]


@policy_app.command("show")
def policy_show(project: ProjectArgument, config: ConfigOption = None) -> None:
    """Show the project's policy (or the default it falls back on)."""
    _print(run_on_project(load(config), safety_service.get_policy, project))


@policy_app.command("set")
def policy_set(
    project: ProjectArgument,
    config: ConfigOption = None,
    input: Assignments = None,
    output: Assignments = None,
    threshold: Assignments = None,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Moderate this project at all.")
    ] = None,
) -> None:
    """Change the project's policy: `--input hate=block --output all=flag --threshold
    violence=0.8` (`default` as a threshold: the model's own). What is not named keeps
    its current value."""
    settings = load(config)
    actor = cli_actor()

    async def change(db: Database, pid: str) -> safety_service.ProjectPolicy:
        current = (await safety_service.get_policy(db, pid)).policy
        categories = categories_to_dict(current)
        try:
            for field, values in (("input", input), ("output", output), ("threshold", threshold)):
                for name, value in _assignments(values or []):
                    for category in CATEGORIES if name == "all" else (name,):
                        categories.setdefault(category, {})[field] = _value(field, value)
            policy = policy_from_dict(
                {
                    "enabled": current.enabled if enabled is None else enabled,
                    "categories": categories,
                }
            )
        except ValueError as exc:
            err_console.print(f"[red]Invalid safety policy: {exc}[/red]")
            raise typer.Exit(2) from exc
        return await safety_service.set_policy(db, pid, policy, actor=actor)

    _print(run_on_project(settings, change, project))


@policy_app.command("reset")
def policy_reset(project: ProjectArgument, config: ConfigOption = None) -> None:
    """Drop the project's own policy: the default applies again."""
    actor = cli_actor()
    _print(
        run_on_project(
            load(config),
            lambda db, pid: safety_service.reset_policy(db, pid, actor=actor),
            project,
        )
    )


def _assignments(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{item!r}: expected CATEGORY=VALUE")
        out.append((name.strip(), value.strip()))
    return out


def _value(field: str, value: str) -> object:
    if field != "threshold":
        return value
    if value == "default":
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"threshold {value!r}: not a number") from exc


def _print(found: safety_service.ProjectPolicy) -> None:
    p = found.policy
    model = Head.load(MODEL_DIR).thresholds
    source = "default" if found.is_default else "project policy"
    state = "" if p.enabled else ", disabled"
    table = Table(title=f"Safety policy of {found.project_id} ({source}{state})")
    for column in ("category", "input", "output", "threshold"):
        table.add_column(column)
    for name, c in p.categories.items():
        threshold = f"{model[name]:g} (model)" if c.threshold is None else f"{c.threshold:g}"
        table.add_row(name, c.input, c.output, threshold)
    console.print(table)
