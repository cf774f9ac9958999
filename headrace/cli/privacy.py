"""`headrace privacy policy show | set | reset`: a project's PII mode and injection action."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from headrace.cli.audit import ConfigOption, cli_actor, console, err_console, load, run_on_project
from headrace.control import privacy as privacy_service
from headrace.errors import HeadraceError
from headrace.safety.privacy import PrivacyPolicy, checked_policy

privacy_app = typer.Typer(help="Personal data and prompt-injection policy.", no_args_is_help=True)
policy_app = typer.Typer(help="A project's privacy policy.", no_args_is_help=True)
privacy_app.add_typer(policy_app, name="policy")
ProjectArgument = Annotated[str, typer.Argument(help="Project id, or a unique project name.")]


@policy_app.command("show")
def policy_show(project: ProjectArgument, config: ConfigOption = None) -> None:
    """Show the project's policy (or the server's defaults it falls back on)."""
    settings = load(config)
    defaults = PrivacyPolicy.from_settings(settings.privacy)
    _print(
        run_on_project(
            settings, lambda db, pid: privacy_service.get_policy(db, pid, defaults), project
        )
    )


@policy_app.command("set")
def policy_set(
    project: ProjectArgument,
    config: ConfigOption = None,
    pii_mode: Annotated[
        str | None, typer.Option(help="log, store or mask (default: the server's).")
    ] = None,
    pii_kind: Annotated[
        list[str] | None,
        typer.Option(help="A PII kind to detect (repeatable; default: every kind)."),
    ] = None,
    injection_threshold: Annotated[
        float | None, typer.Option(help="Injection score (0-1) that flags a tool result.")
    ] = None,
    injection_action: Annotated[str | None, typer.Option(help="flag or block.")] = None,
) -> None:
    """Replace the project's policy; options left out take the server's defaults."""
    settings = load(config)
    defaults = PrivacyPolicy.from_settings(settings.privacy)
    try:
        policy = checked_policy(
            pii_mode=pii_mode or defaults.pii_mode,
            pii_kinds=pii_kind or None,
            injection_threshold=(
                defaults.injection_threshold if injection_threshold is None else injection_threshold
            ),
            injection_action=injection_action or defaults.injection_action,
        )
    except HeadraceError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    actor = cli_actor()
    _print(
        run_on_project(
            settings,
            lambda db, pid: privacy_service.set_policy(db, pid, policy, actor=actor),
            project,
        )
    )


@policy_app.command("reset")
def policy_reset(project: ProjectArgument, config: ConfigOption = None) -> None:
    """Drop the project's own policy: the server's defaults apply again."""
    settings = load(config)
    defaults = PrivacyPolicy.from_settings(settings.privacy)
    actor = cli_actor()
    _print(
        run_on_project(
            settings,
            lambda db, pid: privacy_service.reset_policy(db, pid, defaults, actor=actor),
            project,
        )
    )


def _print(found: privacy_service.ProjectPolicy) -> None:
    p = found.policy
    source = "server defaults" if found.is_default else "project policy"
    table = Table(title=f"Privacy policy of {found.project_id} ({source})")
    table.add_column("setting")
    table.add_column("value")
    table.add_row("pii_mode", p.pii_mode)
    table.add_row("pii_kinds", "all" if p.pii_kinds is None else ", ".join(p.pii_kinds))
    table.add_row("injection_threshold", f"{p.injection_threshold:g}")
    table.add_row("injection_action", p.injection_action)
    console.print(table)
